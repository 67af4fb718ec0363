"""New jobs' run messages, sent from the database's commit: the reconciler process listens on
PostgreSQL's `forge_jobs_queued` channel, which every job insert notifies with the job's id
when its transaction commits (migration rev_8d2c5f17a6e0), and sends one message per
notification, those that arrived together in one batch (ADR 019).

One dispatcher acts however many reconcilers run: the one whose listening connection holds a
session advisory lock. The others try again every reconcile interval, so one takes over within
an interval of the holder's connection closing. What is committed while none listens, or what a
failed send leaves without a message, the reconciler's pass makes up: it sends one for each
queued job that has none waiting (modules.jobs.reconcile)."""

import logging
import math
import threading
from enum import StrEnum

import psycopg
from celery.exceptions import OperationalError

from modules.jobs.reconcile import WorkQueue
from modules.persistence.engine import libpq_conninfo
from modules.persistence.listening import FIRST_RETRY_S, next_retry_s, reason
from modules.settings import Settings

logger = logging.getLogger(__name__)

CHANNEL = "forge_jobs_queued"
# How the listening connection shows in pg_stat_activity.
APPLICATION_NAME = "forge-dispatcher"
# pg_try_advisory_lock key, held by the acting dispatcher's connection; not the reconciler
# pass's key, which its transactions take.
LOCK_KEY = 0x666F7267656D  # "forgem"


class State(StrEnum):
    STARTING = "starting"
    LISTENING = "listening"  # this process sends the messages
    STANDING_BY = "standing by"  # another process's dispatcher holds the lock
    DISCONNECTED = "disconnected"


class Dispatcher:
    def __init__(self, settings: Settings, queue: WorkQueue) -> None:
        self._conninfo = libpq_conninfo(settings)
        self._connect_timeout = math.ceil(settings.database_connect_timeout_s)
        # Standing by, the lock is tried this often; listening, the connection is checked with a
        # query after this long without a notification.
        self._interval_s = settings.reconcile_interval_s
        self._queue = queue
        self.state = State.STARTING

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: listen while this process holds the lock, else stand by."""
        retry_s = FIRST_RETRY_S
        while not stop.is_set():
            try:
                self._listen(stop)
                retry_s = FIRST_RETRY_S
                wait_s = self._interval_s
            except (psycopg.Error, OSError) as error:
                logger.warning(
                    "dispatcher: %s PostgreSQL connection (%s); the reconciler's pass sends "
                    "the messages meanwhile, retrying in %.1f s",
                    "lost its" if self.state is State.LISTENING else "cannot open a",
                    reason(error),
                    retry_s,
                )
                self.state = State.DISCONNECTED
                wait_s, retry_s = retry_s, next_retry_s(retry_s)
            stop.wait(wait_s)

    def _listen(self, stop: threading.Event) -> None:
        with psycopg.connect(
            self._conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=self._connect_timeout,
        ) as connection:
            locked = connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
            if locked.fetchone() != (True,):
                if self.state is not State.STANDING_BY:
                    logger.info("dispatcher: standing by, another reconciler sends messages")
                self.state = State.STANDING_BY
                return
            connection.execute(f"LISTEN {CHANNEL}")
            self.state = State.LISTENING
            logger.info("dispatcher: sending new jobs' messages (channel %s)", CHANNEL)
            while not stop.is_set():
                # The first notification, then whatever else has arrived: one batch.
                count = sum(1 for _ in connection.notifies(timeout=self._interval_s, stop_after=1))
                if count:
                    count += sum(1 for _ in connection.notifies(timeout=0))
                    self._send(count)
                else:
                    connection.execute("SELECT 1")  # a quiet interval: is the server still there?

    def _send(self, count: int) -> None:
        try:
            self._queue.send(count)
        except (OperationalError, OSError) as error:
            logger.warning(
                "dispatcher: %d jobs queued without a message (the reconciler's pass sends "
                "them): %s",
                count,
                error,
            )
