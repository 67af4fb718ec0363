"""The worker's side of running jobs: one Executor per pool process, built after the fork, when
the process starts (services.worker.celery_app), or on first use (its engine and S3 client must
not cross a fork).

STOPPING and SHUTDOWN are created here, in the main process, before the pool forks, so every
pool process shares them. The main process sets STOPPING when a shutdown begins (a message the
pool already holds then claims nothing) and SHUTDOWN once its grace period is over: each running
job is then given back to the queue (modules.jobs.execution) instead of waiting out its lease.
"""

import logging
import multiprocessing
import os
import socket
import threading

from sqlalchemy.orm import sessionmaker

from modules.jobs.execution import Executor
from modules.runners.registry import get_runner
from modules.settings import Settings
from modules.storage.s3 import S3ArtifactStore, make_s3_client
from services.worker import database

logger = logging.getLogger(__name__)

STOPPING = multiprocessing.get_context("fork").Event()
SHUTDOWN = multiprocessing.get_context("fork").Event()
_settings: Settings | None = None
_executor: tuple[int, Executor] | None = None
_grace_timer: threading.Timer | None = None


def configure(settings: Settings) -> None:
    global _settings, _executor
    _settings, _executor = settings, None


def executor() -> Executor:
    global _executor
    if _executor is None or _executor[0] != os.getpid():
        if _settings is None:
            raise RuntimeError("jobs.configure() has not run in this process")
        settings = _settings
        from modules.observability import job_metrics  # see tasks.run_job

        sessions = sessionmaker(database.engine(), expire_on_commit=False)
        store = S3ArtifactStore(make_s3_client(settings), settings.s3_bucket)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        _executor = (
            os.getpid(),
            Executor(
                sessions,
                store,
                get_runner,
                owner=owner,
                lease_s=settings.job_lease_s,
                on_step_done=lambda claim, step, seconds: job_metrics.observe_step_finished(
                    claim.model, step, seconds
                ),
                shutdown=SHUTDOWN,
            ),
        )
    return _executor[1]


def start_grace_period(grace_s: float) -> None:
    """The worker stops taking messages (Celery's warm shutdown) and running jobs get `grace_s`
    to finish; then SHUTDOWN tells them to give their job back. Called again (a second signal),
    it keeps the first deadline."""
    global _grace_timer
    if _grace_timer is not None:
        return
    STOPPING.set()
    logger.info(
        "shutting down: running jobs have %g s to finish, then go back to the queue", grace_s
    )
    _grace_timer = threading.Timer(grace_s, _end_grace_period)
    _grace_timer.daemon = True
    _grace_timer.start()


def _end_grace_period() -> None:
    logger.info("grace period over: jobs still running go back to the queue")
    SHUTDOWN.set()
