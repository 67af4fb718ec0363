"""Typed reads and writes per table: create, get, list. No business rules (status transitions,
retries, idempotency decisions) live here.

The caller owns the session and its transaction: repositories flush, so server-generated values
(ids, timestamps) are set on return, but never commit.
"""

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modules.persistence.base import Base
from modules.persistence.models import Artifact, Event, Job, Model, Step
from modules.persistence.statuses import ACTIVE_JOB_STATUSES

DEFAULT_LIMIT = 100


class _Repository[RowT: Base, KeyT: (uuid.UUID, int)]:
    row_type: type[RowT]

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(self, row: RowT) -> RowT:
        self._session.add(row)
        await self._session.flush()
        return row

    async def get(self, key: KeyT) -> RowT | None:
        return await self._session.get(self.row_type, key)


class ModelRepository(_Repository[Model, uuid.UUID]):
    row_type = Model

    async def list(self, task: str | None = None) -> Sequence[Model]:
        query = select(Model).order_by(Model.name, Model.version)
        if task is not None:
            query = query.where(Model.task == task)
        return (await self._session.scalars(query)).all()


class JobRepository(_Repository[Job, uuid.UUID]):
    row_type = Job

    async def get_by_idempotency_key(self, key: str) -> Job | None:
        return await self._session.scalar(select(Job).where(Job.idempotency_key == key))

    async def list_active(self, limit: int = DEFAULT_LIMIT) -> Sequence[Job]:
        """Queued, running and canceling jobs, oldest first (served by `ix_jobs_active`)."""
        query = (
            select(Job)
            .where(Job.status.in_(ACTIVE_JOB_STATUSES))
            .order_by(Job.created_at, Job.id)
            .limit(limit)
        )
        return (await self._session.scalars(query)).all()

    async def list_for_model(
        self, model_id: uuid.UUID, limit: int = DEFAULT_LIMIT
    ) -> Sequence[Job]:
        """A model's jobs, newest first."""
        query = (
            select(Job)
            .where(Job.model_id == model_id)
            .order_by(Job.created_at.desc(), Job.id)
            .limit(limit)
        )
        return (await self._session.scalars(query)).all()


class StepRepository(_Repository[Step, uuid.UUID]):
    row_type = Step

    async def list_for_job(self, job_id: uuid.UUID) -> Sequence[Step]:
        query = select(Step).where(Step.job_id == job_id).order_by(Step.position)
        return (await self._session.scalars(query)).all()


class EventRepository(_Repository[Event, int]):
    row_type = Event

    async def list_for_job(
        self, job_id: uuid.UUID, after_id: int = 0, limit: int = DEFAULT_LIMIT
    ) -> Sequence[Event]:
        """A job's events after the cursor `after_id` (the last id the reader has seen)."""
        query = (
            select(Event)
            .where(Event.job_id == job_id, Event.id > after_id)
            .order_by(Event.id)
            .limit(limit)
        )
        return (await self._session.scalars(query)).all()


class ArtifactRepository(_Repository[Artifact, uuid.UUID]):
    row_type = Artifact

    async def list_for_job(self, job_id: uuid.UUID) -> Sequence[Artifact]:
        query = (
            select(Artifact)
            .where(Artifact.job_id == job_id)
            .order_by(Artifact.created_at, Artifact.key)
        )
        return (await self._session.scalars(query)).all()
