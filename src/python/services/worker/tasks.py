"""Tasks every Forge worker runs. Shared tasks: they register on the app that imports them."""

import logging
import os
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from modules.buildinfo import GIT_REVISION, VERSION
from modules.jobs.execution import Outcome
from modules.persistence.statuses import JobStatus
from modules.workqueue import RUN_JOB
from services.worker import database, jobs

PING = "health.ping"

logger = logging.getLogger(__name__)


@shared_task(name=RUN_JOB, bind=True, ignore_result=True)
def run_job(self: Task[[], None]) -> None:
    """Claim the best queued job, if any, and run it. The message names no job
    (modules.workqueue), so a duplicate or redelivered one finds nothing left to do."""
    # Imported here, in the pool process: metrics are created on import, which must come after
    # the worker set up multiprocess mode (services.worker.main).
    from modules.observability import job_metrics

    if jobs.STOPPING.is_set():
        return  # the worker is shutting down; the reconciler resends a message for the job
    executor = jobs.executor()
    started = executor.claim_next()
    if started is None:
        return
    claim = started.claim
    logger.info("job %s: attempt %d of %s", claim.job_id, claim.attempt, claim.model)
    with job_metrics.job_in_flight(self.request.hostname or "unknown"):
        finished = executor.run(started)
    if finished.outcome in {Outcome.SUCCEEDED, Outcome.FAILED, Outcome.CANCELED}:
        since_submission = (datetime.now(UTC) - claim.submitted_at).total_seconds()
        job_metrics.observe_job_finished(claim.model, JobStatus(finished.outcome), since_submission)
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
