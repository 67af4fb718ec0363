"""Canceling a job: at once while it is queued, through its worker while it runs."""

import uuid
from dataclasses import dataclass

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from modules.jobs import events
from modules.jobs.steps import cancel_unfinished_steps
from modules.persistence.models import Job
from modules.persistence.statuses import JobStatus


@dataclass(frozen=True)
class Cancellation:
    status: JobStatus  # the job's status afterwards
    ended: bool  # this request ended the job (it was queued), so metrics count it here


def cancel(session: Session, job_id: uuid.UUID, *, owner: str) -> Cancellation | None:
    """Request cancellation of the owner's job; None if the owner has no such job.

    queued -> canceled (it never starts: a worker only claims queued jobs); running ->
    canceling (its worker sees the request and ends it canceled); any other status is left as
    it is, so a repeated cancel is harmless."""
    changed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.owner == owner,
            Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
        .values(
            status=case(
                (Job.status == JobStatus.QUEUED, JobStatus.CANCELED), else_=JobStatus.CANCELING
            ),
            cancel_requested_at=func.now(),
            finished_at=case((Job.status == JobStatus.QUEUED, func.now()), else_=None),
        )
        .returning(Job.status)
    ).scalar_one_or_none()
    if changed is None:
        status = session.scalar(select(Job.status).where(Job.id == job_id, Job.owner == owner))
        return None if status is None else Cancellation(status, ended=False)
    if changed == JobStatus.CANCELED:
        cancel_unfinished_steps(session, job_id)  # a requeued job may have some
    events.append(session, job_id, events.NewEvent(f"job.{changed}", {"status": changed}))
    return Cancellation(changed, ended=changed == JobStatus.CANCELED)
