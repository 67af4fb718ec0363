"""Wake-ups for readers of a job's events: one PostgreSQL `LISTEN forge_events` connection per
api process (not from the pool), fanned out in memory to whoever waits on a job.

Every event insert notifies its job's id when its transaction commits (the migration
rev_3c1f0e7a9b42 adds the trigger). A notification only says "read again": the reader reads the
events after its cursor, so a duplicate notification costs a read, never an event twice. While
listening, readers wait for notifications only: PostgreSQL delivers each one to a live
listening session, and the connection is checked after a quiet poll interval. Losing it wakes
every reader, and until it is back they poll; once listening again, every reader is woken,
because notifications sent in between are lost."""

import asyncio
import logging
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg

from modules.persistence.engine import libpq_conninfo
from modules.persistence.listening import FIRST_RETRY_S, next_retry_s, reason
from modules.settings import Settings
from services.api.metrics import EVENTS_LISTENING

logger = logging.getLogger(__name__)

CHANNEL = "forge_events"
# How the listening connection shows in pg_stat_activity.
APPLICATION_NAME = "forge-api-events"


class Wakeup:
    """One reader's subscription to a job's notifications."""

    def __init__(self, notifier: "JobNotifier") -> None:
        self._notifier = notifier
        self._event = asyncio.Event()
        self._notified_at = 0.0

    def set(self) -> None:
        self._notified_at = asyncio.get_running_loop().time()
        self._event.set()

    async def wait(self, at_most_s: float | None = None) -> float:
        """Until the job is notified (or was since the last wait), or `at_most_s` passes, or,
        while the notifier is not listening, its poll interval passes. Returns the loop time
        after which a read must start to see what woke it (the notification's arrival, or
        now). A notification that arrives during that read wakes the next wait."""
        timeout_s = at_most_s
        if not self._notifier.listening:
            poll_s = self._notifier.poll_s
            timeout_s = poll_s if timeout_s is None else min(timeout_s, poll_s)
        try:
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
        except TimeoutError:
            since = asyncio.get_running_loop().time()
        else:
            since = self._notified_at
        self._event.clear()
        return since


class JobNotifier:
    def __init__(self, settings: Settings) -> None:
        self._conninfo = libpq_conninfo(settings)
        self._timeout_s = settings.database_connect_timeout_s
        # While not listening, readers poll this often. While listening, the connection is
        # checked with a query after this long without a notification: a server that vanished
        # without closing the socket must not silence every reader for longer.
        self.poll_s = settings.events_poll_s
        self._waiters: dict[uuid.UUID, set[Wakeup]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="job-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._set_listening(False)

    @contextmanager
    def subscribe(self, job_id: uuid.UUID) -> Iterator[Wakeup]:
        """A wakeup for the job's notifications while the block runs. Subscribe before the
        first read, so that an event committed in between wakes the first wait."""
        wakeup = Wakeup(self)
        self._waiters.setdefault(job_id, set()).add(wakeup)
        try:
            yield wakeup
        finally:
            waiters = self._waiters[job_id]
            waiters.discard(wakeup)
            if not waiters:
                del self._waiters[job_id]

    @property
    def waiting(self) -> int:
        """How many subscriptions are open."""
        return sum(len(waiters) for waiters in self._waiters.values())

    async def _listen_forever(self) -> None:
        retry_s = FIRST_RETRY_S
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError, TimeoutError) as error:
                if self.listening:  # a new outage: retry soon again
                    retry_s = FIRST_RETRY_S
                logger.warning(
                    "%s LISTEN connection (%s); event readers poll until it is back, retrying "
                    "in %.1f s",
                    "lost the" if self.listening else "cannot open a",
                    reason(error),
                    retry_s,
                )
                if self.listening:
                    self._set_listening(False)
                    self._wake_all()  # waiting without a timeout: from now on they poll
            await asyncio.sleep(retry_s)
            retry_s = next_retry_s(retry_s)

    async def _listen(self) -> None:
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=math.ceil(self._timeout_s),  # libpq counts whole seconds
        )
        async with connection:
            async with asyncio.timeout(self._timeout_s):
                await connection.execute(f"LISTEN {CHANNEL}")
            self._set_listening(True)
            logger.info("listening for job events on PostgreSQL channel %s", CHANNEL)
            # Whatever was committed while nobody listened: every reader reads again.
            self._wake_all()
            while True:
                async for notify in connection.notifies(timeout=self.poll_s):
                    self._wake(notify.payload)
                async with asyncio.timeout(self._timeout_s):
                    await connection.execute("SELECT 1")

    def _wake(self, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            logger.warning("ignored a %s notification that names no job: %r", CHANNEL, payload)
            return
        for wakeup in self._waiters.get(job_id, ()):
            wakeup.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for wakeup in waiters:
                wakeup.set()

    def _set_listening(self, listening: bool) -> None:
        self.listening = listening
        EVENTS_LISTENING.set(1 if listening else 0)
