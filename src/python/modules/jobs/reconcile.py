"""The reconciler's pass: take back jobs whose worker's lease expired, and make sure every
queued job has a message waiting for it (PostgreSQL is the truth, Redis only carries work)."""

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modules.jobs.claims import HELD_STATUSES, requeue_or_fail
from modules.persistence.models import Job, Model
from modules.persistence.statuses import FINAL_JOB_STATUSES, JobStatus

# pg_try_advisory_xact_lock key: one reconciler acts at a time, however many run.
LOCK_KEY = 0x666F726765  # "forge"
# At most this many messages per pass, so a backlog of millions does not flood Redis at once.
MAX_TOKENS_PER_PASS = 5000
LEASE_EXPIRED = "the worker's lease expired (the worker died or stalled)"


class WorkQueue(Protocol):
    def waiting(self) -> int: ...  # messages in the queue, not yet taken by a worker

    def send(self, count: int) -> None: ...


@dataclass(frozen=True)
class Ended:
    """A job this pass ended (failed with its attempts used up, or canceled)."""

    model: str  # name@version
    status: JobStatus
    seconds: float  # since its submission


@dataclass(frozen=True)
class Pass:
    acted: bool  # False: another reconciler holds the lock
    taken_back: Counter[JobStatus]  # what jobs with an expired lease became
    ended: list[Ended]
    queued: dict[str, int]  # queued jobs per model (name@version), every model listed
    sent: int  # messages sent


def reconcile(sessions: Callable[[], Session], queue: WorkQueue) -> Pass:
    """One pass. Messages are sent after the commit, so a job requeued here is visible to the
    worker that takes its message."""
    with sessions() as session, session.begin():
        if not session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
            return Pass(False, Counter(), [], {}, 0)
        taken_back: Counter[JobStatus] = Counter()
        ended_ids = []
        expired = session.scalars(
            select(Job.id).where(Job.status.in_(HELD_STATUSES), Job.lease_expires_at < func.now())
        ).all()
        for job_id in expired:
            status = requeue_or_fail(
                session,
                (Job.id == job_id)
                & Job.status.in_(HELD_STATUSES)
                & (Job.lease_expires_at < func.now()),
                LEASE_EXPIRED,
            )
            if status is not None:
                taken_back[status] += 1
            if status in FINAL_JOB_STATUSES:
                ended_ids.append(job_id)
        ended = _ended(session, ended_ids) if ended_ids else []
        queued = queued_by_model(session)
    missing = sum(queued.values()) - queue.waiting()
    sent = min(max(missing, 0), MAX_TOKENS_PER_PASS)
    if sent:
        queue.send(sent)
    return Pass(True, taken_back, ended, queued, sent)


def _ended(session: Session, job_ids: list[uuid.UUID]) -> list[Ended]:
    rows = session.execute(
        select(
            Model.name,
            Model.version,
            Job.status,
            func.extract("epoch", Job.finished_at - Job.created_at),
        )
        .join(Model, Model.id == Job.model_id)
        .where(Job.id.in_(job_ids))
    )
    return [
        Ended(f"{name}@{version}", status, float(seconds))
        for name, version, status, seconds in rows
    ]


def queued_by_model(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Model.name, Model.version, func.count(Job.id))
        .select_from(Model)
        .outerjoin(Job, (Job.model_id == Model.id) & (Job.status == JobStatus.QUEUED))
        .group_by(Model.id, Model.name, Model.version)
    )
    return {f"{name}@{version}": count for name, version, count in rows}
