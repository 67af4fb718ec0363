"""`forge-worker reconcile`: every few seconds, take back jobs whose worker's lease expired and
send a message for each queued job that has none (modules.jobs.reconcile). It also samples the
queued jobs per model for /metrics. Any number may run; one acts per pass (an advisory lock).
Meanwhile its dispatcher sends new jobs' messages as their inserts commit
(services.worker.dispatcher)."""

import logging
import threading
import time

from sqlalchemy.orm import sessionmaker

from modules.jobs.reconcile import Pass, reconcile
from modules.observability import job_metrics
from modules.observability.health import CheckResult, Readiness
from modules.settings import Settings
from modules.workqueue import TokenQueue, make_celery
from services.worker import database, endpoint
from services.worker.dispatcher import Dispatcher

logger = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sessions = sessionmaker(database.engine(), expire_on_commit=False)
        producer = make_celery(
            "forge-reconciler",
            str(settings.broker_url),
            # An unreachable Redis must not hold a send for long: the next pass sends again.
            broker_transport_options={"socket_connect_timeout": 2, "socket_timeout": 2},
        )
        self.queue = TokenQueue(producer)
        self._last_ok: float | None = None
        self._last_error = "no pass yet"

    def run_once(self) -> Pass:
        result = reconcile(self._sessions, self.queue)
        if result.acted:
            job_metrics.set_jobs_queued(result.queued)
        for job in result.ended:
            job_metrics.observe_job_finished(job.model, job.status, job.seconds)
        if result.sent or result.taken_back:
            logger.info(
                "reconciled: sent %d messages; jobs taken back: %s",
                result.sent,
                dict(result.taken_back) or "none",
                extra={"sent": result.sent, "taken_back": dict(result.taken_back)},
            )
        return result

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
                self._last_ok = time.monotonic()
            except Exception as error:  # the database or Redis is down: say so, try again
                self._last_error = f"{type(error).__name__}: {error}".splitlines()[0]
                logger.warning("reconcile pass failed: %s", self._last_error)
            stop.wait(self._settings.reconcile_interval_s)

    def readiness(self) -> Readiness:
        """Ready while passes succeed: the last one ended within three intervals."""
        fresh = self._last_ok is not None and (
            time.monotonic() - self._last_ok < 3 * self._settings.reconcile_interval_s + 1
        )
        check = CheckResult(
            status="ok" if fresh else "fail",
            latency_ms=None,
            detail=None if fresh else self._last_error,
        )
        return Readiness(status="ready" if fresh else "not_ready", checks={"reconcile": check})


def serve(settings: Settings) -> int:
    reconciler = Reconciler(settings)
    host, port = settings.worker_metrics_host, settings.reconciler_metrics_port
    server = endpoint.serve(host, port, reconciler.readiness)
    logger.info(
        "reconciling every %gs; /healthz, /readyz and /metrics on http://%s:%d",
        settings.reconcile_interval_s,
        host,
        server.server_port,
    )
    stop = threading.Event()
    dispatcher = Dispatcher(settings, reconciler.queue)
    # A daemon: a send or a query that hangs must not keep the process from exiting.
    threading.Thread(target=dispatcher.run, args=(stop,), name="dispatcher", daemon=True).start()
    try:
        reconciler.run_forever(stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
    return 0
