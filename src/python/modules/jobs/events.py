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

from sqlalchemy import ColumnElement, cast, column, func, insert, literal, select, true, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from modules.persistence.base import JsonObject
from modules.persistence.models import Event, Job


@dataclass(frozen=True)
class NewEvent:
    type: str
    payload: JsonObject
    step_id: uuid.UUID | None = None


def append(
    session: Session,
    job_id: uuid.UUID,
    *events: NewEvent,
    only_if: ColumnElement[bool] | None = None,
) -> list[int]:
    """Append events to the job, in order, in one statement; returns their seqs. `only_if` is a
    condition on the job's row (a worker's fence): when it does not hold, nothing is appended
    and [] returned."""
    if not events:
        return []
    bumped = (
        update(Job)
        .where(Job.id == job_id, only_if if only_if is not None else true())
        .values(last_event_seq=Job.last_event_seq + len(events))
        .returning(Job.id, Job.last_event_seq)
        .cte("bumped")
    )
    # The batch travels as one JSON array; each element's position gives its seq.
    batch = literal(
        [
            {
                "step_id": None if e.step_id is None else str(e.step_id),
                "type": e.type,
                "payload": e.payload,
            }
            for e in events
        ],
        JSONB,
    )
    rows = (
        func.jsonb_array_elements(batch)
        .table_valued(column("value", JSONB), with_ordinality="position")
        .render_derived(name="batch")
    )
    statement = (
        insert(Event)
        .from_select(
            ["job_id", "seq", "step_id", "type", "payload"],
            select(
                bumped.c.id,
                bumped.c.last_event_seq - len(events) + rows.c.position,
                cast(rows.c.value["step_id"].astext, Event.step_id.type),
                rows.c.value["type"].astext,
                rows.c.value["payload"],
            )
            .select_from(bumped)
            .join(rows, true()),
        )
        .returning(Event.seq)
    )
    return sorted(session.scalars(statement).all())


def page(session: Session, job_id: uuid.UUID, after: int, limit: int) -> Sequence[Event]:
    """The job's events with seq > after, in order, at most `limit`."""
    query = (
        select(Event)
        .where(Event.job_id == job_id, Event.seq > after)
        .order_by(Event.seq)
        .limit(limit)
    )
    return session.scalars(query).all()
