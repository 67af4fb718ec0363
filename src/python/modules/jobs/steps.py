"""A job's steps: planned once, each claimed by the job's holder, resumed after a redelivery."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from modules.persistence.base import JsonObject
from modules.persistence.models import Step
from modules.persistence.statuses import StepStatus, sql_list

# A failed step runs again when its job gets another attempt (after a storage error, say).
UNFINISHED = (StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.FAILED)


@dataclass(frozen=True)
class PlannedStep:
    id: uuid.UUID
    position: int
    name: str
    status: StepStatus


# Every job plans, starts and ends its steps: SQL rather than constructs built per call (ADR 016).
_PLAN = text("""
    INSERT INTO steps (job_id, position, name)
    SELECT :job_id, plan.position - 1, plan.name
    FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS plan(name, position)
    ON CONFLICT (job_id, position) DO NOTHING
    RETURNING id, position, name, status
    """)
_PLANNED = text("SELECT id, position, name, status FROM steps WHERE job_id = :job_id")
_START = text(f"""
    UPDATE steps
    SET status = 'running', attempts = attempts + 1, started_at = now(), finished_at = NULL,
        error = NULL
    WHERE id = :step_id AND status IN ({sql_list(UNFINISHED)})
    """)
_FINISH = text(
    "UPDATE steps SET status = :status, finished_at = now(), error = :error WHERE id = :step_id"
).bindparams(bindparam("error", type_=JSONB(none_as_null=True)))


def plan(session: Session, job_id: uuid.UUID, names: Sequence[str]) -> list[PlannedStep]:
    """The job's steps in order, inserted on its first run; a later run finds the same rows."""
    rows = session.execute(_PLAN, {"job_id": job_id, "names": list(names)}).all() if names else []
    if len(rows) < len(names) or not rows:  # planned by an earlier run (or nothing to plan)
        rows = session.execute(_PLANNED, {"job_id": job_id}).all()
    return sorted(
        (PlannedStep(row.id, row.position, row.name, StepStatus(row.status)) for row in rows),
        key=lambda step: step.position,
    )


def start(session: Session, step_id: uuid.UUID) -> None:
    session.execute(_START, {"step_id": step_id})


def finish(
    session: Session, step_id: uuid.UUID, status: StepStatus, error: JsonObject | None = None
) -> None:
    session.execute(_FINISH, {"step_id": step_id, "status": status.value, "error": error})


def cancel_unfinished_steps(session: Session, job_id: uuid.UUID) -> None:
    """When the job ends: its steps that never ran, or were running, are canceled."""
    session.execute(
        update(Step)
        .where(Step.job_id == job_id, Step.status.in_([StepStatus.QUEUED, StepStatus.RUNNING]))
        .values(status=StepStatus.CANCELED, finished_at=func.now())
    )
