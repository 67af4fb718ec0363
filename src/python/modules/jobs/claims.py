"""Claiming a queued job, holding it under a lease, and ending the hold.

A claim is a compare-and-set (queued -> running) on the job chosen with FOR UPDATE SKIP LOCKED,
which also increments `attempts`. The claim's attempt number is a fencing token: every later
write of the holder checks it (with the owner and the status), so a worker that lost its lease
(it stalled, the reconciler requeued the job, another worker claimed it) can no longer write.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, TextClause, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from modules.jobs import events, steps
from modules.persistence.base import JsonObject
from modules.persistence.models import Job
from modules.persistence.statuses import JobStatus, sql_list

HELD_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELING)


@dataclass(frozen=True)
class Claim:
    job_id: uuid.UUID
    attempt: int
    owner: str
    model: str  # name@version, for metrics and logs
    runner: str
    input: JsonObject
    submitted_at: datetime


# The condition under which a claim still holds its job, as SQL: the holder's statements that
# every job runs are written as SQL (ADR 016), and the rarer ones use it through held().
_HELD = (
    "id = :job_id AND attempts = :attempt AND lease_owner = :owner "
    f"AND status IN ({sql_list(HELD_STATUSES)})"
)


def _fence(claim: Claim) -> dict[str, object]:
    return {"job_id": claim.job_id, "attempt": claim.attempt, "owner": claim.owner}


def held(claim: Claim) -> TextClause:
    """The condition under which `claim` still holds its job, for a statement on `jobs`."""
    return text(_HELD).bindparams(**_fence(claim))


# The claim, its model and its job.started event in one statement: the queued job with the
# highest priority, oldest first, locked with SKIP LOCKED so concurrent claims take different
# jobs, and checked to be queued still once locked. SQL rather than a construct built per call:
# every job's first statement (ADR 015). The statuses are literals, not parameters: the planner
# then knows the scan lies within the partial index ix_jobs_active, also in a prepared plan.
_CLAIM = text("""
    WITH candidate AS (
        SELECT id FROM jobs
        WHERE status = 'queued'
        ORDER BY priority DESC, created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE jobs
        SET status = 'running', attempts = jobs.attempts + 1, lease_owner = :owner,
            lease_expires_at = now() + make_interval(secs => :lease_s),
            started_at = coalesce(jobs.started_at, now()),
            last_event_seq = jobs.last_event_seq + 1
        FROM candidate, models
        WHERE jobs.id = candidate.id AND jobs.status = 'queued' AND models.id = jobs.model_id
        RETURNING jobs.id, jobs.attempts, jobs.input, jobs.created_at, jobs.last_event_seq,
                  models.name, models.version, models.runner
    ), started AS (
        INSERT INTO events (job_id, seq, type, payload)
        SELECT id, last_event_seq, 'job.started',
               jsonb_build_object('attempt', attempts, 'worker', CAST(:owner AS text))
        FROM claimed
    )
    SELECT * FROM claimed
    """)


# The fence and the job's end, which every job runs (ADR 016).
_HOLD = text(f"SELECT status FROM jobs WHERE {_HELD} FOR UPDATE")
_FINISH = text(f"""
    UPDATE jobs
    SET status = :status, error = :error, finished_at = now(), lease_owner = NULL,
        lease_expires_at = NULL
    WHERE {_HELD}
    RETURNING id
    """).bindparams(bindparam("error", type_=JSONB(none_as_null=True)))


def claim_next(session: Session, owner: str, lease_s: float) -> Claim | None:
    """Take the queued job with the highest priority, oldest first (event job.started); None if
    there is none."""
    row = session.execute(_CLAIM, {"owner": owner, "lease_s": lease_s}).one_or_none()
    if row is None:
        return None
    reference = f"{row.name}@{row.version}"
    return Claim(row.id, row.attempts, owner, reference, row.runner, row.input, row.created_at)


def hold(session: Session, claim: Claim) -> JobStatus | None:
    """Lock the job's row for this transaction if the claim still holds it; returns its status
    (running, or canceling once a cancel was requested), None if the claim lost it."""
    status = session.scalar(_HOLD, _fence(claim))
    return None if status is None else JobStatus(status)


def renew(session: Session, claim: Claim, lease_s: float) -> JobStatus | None:
    """Extend the lease; returns the status as hold() does."""
    return session.scalar(
        update(Job)
        .where(held(claim))
        .values(lease_expires_at=func.now() + timedelta(seconds=lease_s))
        .returning(Job.status)
    )


def finish(
    session: Session,
    claim: Claim,
    status: JobStatus,
    error: JsonObject | None = None,
    *,
    preceding: Sequence[events.NewEvent] = (),
) -> bool:
    """End the job (succeeded, failed or canceled) and its lease; False if the claim lost it.
    `preceding`: events that come before the job's last one, appended with it in one
    statement."""
    done = session.scalar(_FINISH, {**_fence(claim), "status": status.value, "error": error})
    if done is None:
        return False
    if status != JobStatus.SUCCEEDED:
        steps.cancel_unfinished_steps(session, claim.job_id)
    payload: JsonObject = {"status": status}
    if error is not None:
        payload["error"] = error
    events.append(session, claim.job_id, *preceding, events.NewEvent(f"job.{status}", payload))
    return True


def release(
    session: Session,
    claim: Claim,
    reason: str,
    *,
    uses_attempt: bool = True,
    preceding: Sequence[events.NewEvent] = (),
) -> JobStatus | None:
    """Give the job back: queued again for another attempt, or failed if it has had them all.
    Returns the new status, None if the claim had already lost the job. `uses_attempt=False`
    (the worker shut down, nothing failed) gives the attempt back by raising max_attempts:
    `attempts` stays as it is, since it is the claims' fencing token."""
    if not uses_attempt:
        session.execute(update(Job).where(held(claim)).values(max_attempts=Job.max_attempts + 1))
    return requeue_or_fail(session, held(claim), reason, preceding)


def requeue_or_fail(
    session: Session,
    which: ColumnElement[bool] | TextClause,
    reason: str,
    preceding: Sequence[events.NewEvent] = (),
) -> JobStatus | None:
    """For one held job matched by `which`: canceling -> canceled; running -> queued, or
    failed once its attempts are used up. Shared by release() and the reconciler. `preceding`
    as in finish()."""
    job = session.scalars(select(Job).where(which).with_for_update(skip_locked=True)).first()
    if job is None:
        return None
    error: JsonObject | None = None
    if job.status == JobStatus.CANCELING:
        status = JobStatus.CANCELED
    elif job.attempts >= job.max_attempts:
        status = JobStatus.FAILED
        error = {
            "type": "attempts_exhausted",
            "message": f"gave up after {job.attempts} attempts; the last ended with: {reason}",
        }
    else:
        status = JobStatus.QUEUED
    terminal = status != JobStatus.QUEUED
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            status=status,
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=func.now() if terminal else None,
        )
    )
    if terminal:
        steps.cancel_unfinished_steps(session, job.id)
    payload: JsonObject = {"status": status, "reason": reason}
    if error is not None:
        payload["error"] = error
    kind = "job.requeued" if status == JobStatus.QUEUED else f"job.{status}"
    events.append(session, job.id, *preceding, events.NewEvent(kind, payload))
    return status
