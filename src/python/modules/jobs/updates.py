"""Reads for following a job as it runs: its status, and its events after a cursor."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from modules.persistence.base import JsonObject
from modules.persistence.models import Job
from modules.persistence.statuses import ACTIVE_JOB_STATUSES, JobStatus

# The last event of a job that ended: appended in the transaction that sets its final status.
TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.canceled"})


def is_terminal(status: JobStatus) -> bool:
    return status not in ACTIVE_JOB_STATUSES


@dataclass(frozen=True)
class EventRecord:
    seq: int
    type: str
    payload: JsonObject
    created_at: datetime


@dataclass(frozen=True)
class Progress:
    status: JobStatus
    events: Sequence[EventRecord]  # after the cursor, in order


# The status and the page in one statement (one snapshot, one round trip instead of two), as
# SQL rather than constructs built per call: every follower reads it at every wake-up (ADR 017).
_READ_AFTER = text("""
    SELECT jobs.status, page.seq, page.type, page.payload, page.created_at
    FROM jobs
    LEFT JOIN LATERAL (
        SELECT seq, type, payload, created_at FROM events
        WHERE events.job_id = jobs.id AND events.seq > :after
        ORDER BY seq
        LIMIT :limit
    ) AS page ON true
    WHERE jobs.id = :job_id
    ORDER BY page.seq
    """)


def status(session: Session, job_id: uuid.UUID, *, owner: str | None = None) -> JobStatus | None:
    """The job's status; None when there is no such job (or, given an owner, none of its)."""
    query = select(Job.status).where(Job.id == job_id)
    if owner is not None:
        query = query.where(Job.owner == owner)
    return session.scalar(query)


def read_after(session: Session, job_id: uuid.UUID, after: int, limit: int) -> Progress | None:
    """The job's status and up to `limit` of its events with seq > after; None when there is
    no such job. Both come from one snapshot: a status read as terminal means the page holds
    every event up to the terminal one (they committed together), so a reader may stop when
    the status is terminal and the page is empty."""
    rows = session.execute(_READ_AFTER, {"job_id": job_id, "after": after, "limit": limit}).all()
    if not rows:
        return None
    page = [EventRecord(r.seq, r.type, r.payload, r.created_at) for r in rows if r.seq is not None]
    return Progress(JobStatus(rows[0].status), page)
