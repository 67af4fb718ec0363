"""Tasks every Forge worker runs. Shared tasks: they register on the app that imports them."""

import logging
import os
from typing import Any

from celery import Task, shared_task

from modules.buildinfo import GIT_REVISION, VERSION
from modules.observability import job_metrics
from modules.workqueue import RUN_JOB
from services.worker import database, jobs

PING = "health.ping"

logger = logging.getLogger(__name__)


@shared_task(name=RUN_JOB, ignore_result=True)
def run_job() -> None:
    """Claim the best queued job, if any, and run it. The message names no job
    (modules.workqueue), so a duplicate or redelivered one finds nothing left to do."""
    executor = jobs.executor()
    claim = executor.claim_next()
    if claim is None:
        return
    logger.info("job %s: attempt %d of %s", claim.job_id, claim.attempt, claim.model)
    with job_metrics.in_flight():
        finished = executor.run(claim)
    job_metrics.observe_job_finished(claim.model, finished.outcome, finished.seconds)
    logger.info("job %s: %s after %.1f s", claim.job_id, finished.outcome, finished.seconds)


@shared_task(name=PING, bind=True)
def ping(self: Task[[], dict[str, Any]]) -> dict[str, Any]:
    """Proves the round trip client -> broker -> worker -> result backend, names who answered,
    and says whether that process reaches PostgreSQL (reported, not failed: the broker round
    trip is what this checks)."""
    return {
        "pong": True,
        "worker": self.request.hostname,
        "pid": os.getpid(),
        "version": VERSION,
        "revision": GIT_REVISION,
        "database": database.status(),
    }
