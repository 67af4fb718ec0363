"""The worker's side of running jobs: one Executor per pool process, built on first use after
the fork (its engine and S3 client must not cross a fork)."""

import os
import socket

from sqlalchemy.orm import sessionmaker

from modules.jobs.execution import Executor
from modules.runners.registry import get_runner
from modules.settings import Settings
from modules.storage.s3 import S3ArtifactStore, make_s3_client
from services.worker import database

_settings: Settings | None = None
_executor: tuple[int, Executor] | None = None


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
            ),
        )
    return _executor[1]
