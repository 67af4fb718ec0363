"""Reads for following a job as it runs: its status, and its events after a cursor."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from modules.jobs import events
from modules.persistence.models import Event, Job
from modules.persistence.statuses import ACTIVE_JOB_STATUSES, JobStatus

# The last event of a job that ended: appended in the transaction that sets its final status.
TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.canceled"})


def is_terminal(status: JobStatus) -> bool:
    return status not in ACTIVE_JOB_STATUSES


@dataclass(frozen=True)
class Progress:
    status: JobStatus
    events: Sequence[Event]  # after the cursor, in order


def status(session: Session, job_id: uuid.UUID, *, owner: str | None = None) -> JobStatus | None:
    """The job's status; None when there is no such job (or, given an owner, none of its)."""
    query = select(Job.status).where(Job.id == job_id)
    if owner is not None:
        query = query.where(Job.owner == owner)
    return session.scalar(query)


def read_after(session: Session, job_id: uuid.UUID, after: int, limit: int) -> Progress | None:
    """The job's status, then up to `limit` of its events with seq > after; None when there is
    no such job. The status is read first, each statement seeing what was committed when it
    started: a status read as terminal means the page holds every event up to the terminal one
    (they committed together), so a reader may stop when the status is terminal and the page
    is empty."""
    current = status(session, job_id)
    if current is None:
        return None
    return Progress(current, events.page(session, job_id, after, limit))
