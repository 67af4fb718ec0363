"""Appending to a job's event stream with a gapless per-job sequence.

Event ids come from a sequence, and a transaction that took a smaller id can commit after one
that took a larger id: a reader resuming after an id would miss it. Instead each event takes the
job's next `seq` by incrementing `jobs.last_event_seq` in the same statement, which locks the job
row until the transaction ends. A second appender waits for that lock, so seq N+1 is never visible
before seq N, and a rolled-back append leaves no hole.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from modules.persistence.base import JsonObject
from modules.persistence.models import Event


@dataclass(frozen=True)
class NewEvent:
    type: str
    payload: JsonObject
    step_id: uuid.UUID | None = None


# One statement, the same text for every batch: the seqs are taken by bumping the job's counter,
# the events come from one JSON array, and each element's position gives its seq. Written as
# SQL rather than built per call: every transaction of a job appends, and building and caching
# the equivalent Core construct cost three times the statement's round trip (ADR 015).
_APPEND = text("""
    WITH bumped AS (
        UPDATE jobs SET last_event_seq = last_event_seq + :count
        WHERE id = :job_id
        RETURNING id, last_event_seq
    )
    INSERT INTO events (job_id, seq, step_id, type, payload)
    SELECT bumped.id, bumped.last_event_seq - :count + batch.position,
           CAST(batch.value ->> 'step_id' AS uuid), batch.value ->> 'type', batch.value -> 'payload'
    FROM bumped CROSS JOIN jsonb_array_elements(:batch) WITH ORDINALITY AS batch(value, position)
    RETURNING seq
    """).bindparams(bindparam("batch", type_=JSONB))


def append(session: Session, job_id: uuid.UUID, *events: NewEvent) -> list[int]:
    """Append events to the job, in order, in one statement; returns their seqs."""
    if not events:
        return []
    batch = [
        {
            "step_id": None if e.step_id is None else str(e.step_id),
            "type": e.type,
            "payload": e.payload,
        }
        for e in events
    ]
    parameters = {"count": len(events), "job_id": job_id, "batch": batch}
    return sorted(session.scalars(_APPEND, parameters).all())


def page(session: Session, job_id: uuid.UUID, after: int, limit: int) -> Sequence[Event]:
    """The job's events with seq > after, in order, at most `limit`."""
    query = (
        select(Event)
        .where(Event.job_id == job_id, Event.seq > after)
        .order_by(Event.seq)
        .limit(limit)
    )
    return session.scalars(query).all()
