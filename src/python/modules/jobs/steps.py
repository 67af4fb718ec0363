"""A job's steps: planned once, each claimed by the job's holder, resumed after a redelivery."""

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from modules.persistence.base import JsonObject
from modules.persistence.models import Step
from modules.persistence.statuses import StepStatus

# A failed step runs again when its job gets another attempt (after a storage error, say).
UNFINISHED = (StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.FAILED)


def plan(session: Session, job_id: uuid.UUID, names: Sequence[str]) -> Sequence[Step]:
    """The job's steps, inserted on its first run; a later run finds the same rows."""
    if names:
        inserted = session.scalars(
            insert(Step)
            .values([{"job_id": job_id, "position": i, "name": n} for i, n in enumerate(names)])
            .on_conflict_do_nothing(index_elements=[Step.job_id, Step.position])
            .returning(Step)
        ).all()
        if len(inserted) == len(names):  # the first run: nothing else to read
            return sorted(inserted, key=lambda step: step.position)
    return session.scalars(select(Step).where(Step.job_id == job_id).order_by(Step.position)).all()


def start(session: Session, step_id: uuid.UUID) -> None:
    session.execute(
        update(Step)
        .where(Step.id == step_id, Step.status.in_(UNFINISHED))
        .values(
            status=StepStatus.RUNNING,
            attempts=Step.attempts + 1,
            started_at=func.now(),
            finished_at=None,
            error=None,
        )
    )


def finish(
    session: Session, step_id: uuid.UUID, status: StepStatus, error: JsonObject | None = None
) -> None:
    session.execute(
        update(Step)
        .where(Step.id == step_id)
        .values(status=status, finished_at=func.now(), error=error)
    )


def cancel_unfinished_steps(session: Session, job_id: uuid.UUID) -> None:
    """When the job ends: its steps that never ran, or were running, are canceled."""
    session.execute(
        update(Step)
        .where(Step.job_id == job_id, Step.status.in_([StepStatus.QUEUED, StepStatus.RUNNING]))
        .values(status=StepStatus.CANCELED, finished_at=func.now())
    )
