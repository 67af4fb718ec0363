"""Reading jobs: one job with its steps and artifacts, and the newest-first listing."""

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from modules.persistence.models import Artifact, Job, Model, Step
from modules.persistence.statuses import JobStatus


@dataclass(frozen=True)
class JobView:
    job: Job
    model: Model
    steps: Sequence[Step]
    artifacts: Sequence[Artifact]


@dataclass(frozen=True)
class JobPage:
    jobs: Sequence[JobView]
    next_cursor: str | None  # None: this is the last page


class InvalidCursor(Exception):
    """A cursor this code did not write (or one that was edited)."""


def get_job(session: Session, job_id: uuid.UUID, *, owner: str) -> JobView | None:
    """The owner's job; None when there is none (another owner's job included)."""
    row = session.execute(
        select(Job, Model)
        .join(Model, Model.id == Job.model_id)
        .where(Job.id == job_id, Job.owner == owner)
    ).one_or_none()
    if row is None:
        return None
    return _views(session, [(row.Job, row.Model)])[0]


def list_jobs(
    session: Session,
    *,
    owner: str,
    limit: int,
    cursor: str | None = None,
    status: JobStatus | None = None,
    model: str | None = None,
) -> JobPage:
    """The owner's jobs, newest first. The cursor is the (created_at, id) of the previous page's last job, so a
    job inserted while a client pages appears before its position, never on a later page twice;
    each filter has an index that serves this order (docs/data-model.md shows the plans)."""
    query = select(Job, Model).join(Model, Model.id == Job.model_id).where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status)
    if model is not None:
        # On jobs.model_id, not on the joined models row: a condition on the models row lets the
        # planner only filter a newest-first scan of all jobs, which reads every other model's
        # jobs in between; `model_id = (SELECT ...)` reads the model's index range and no more.
        name, _, version = model.partition("@")
        ids = select(Model.id).where(Model.name == name)
        if version:
            query = query.where(
                Job.model_id == ids.where(Model.version == version).scalar_subquery()
            )
        else:
            query = query.where(Job.model_id.in_(ids))
    if cursor is not None:
        created_at, job_id = decode_cursor(cursor)
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, job_id))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = [(row.Job, row.Model) for row in session.execute(query)]
    views = _views(session, rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        next_cursor = encode_cursor(last.created_at, last.id)
    return JobPage(views, next_cursor)


def get_artifacts(session: Session, job_id: uuid.UUID) -> Sequence[Artifact]:
    query = select(Artifact).where(Artifact.job_id == job_id)
    return session.scalars(query.order_by(Artifact.key)).all()


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, job_id = raw.partition("|")
        parsed = datetime.fromisoformat(created_at), uuid.UUID(job_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor(cursor) from error
    if parsed[0].tzinfo is None:
        raise InvalidCursor(cursor)
    return parsed


def _views(session: Session, rows: Sequence[tuple[Job, Model]]) -> list[JobView]:
    """Steps and artifacts of all the jobs in two queries, not two per job."""
    ids = [job.id for job, _ in rows]
    steps: dict[uuid.UUID, list[Step]] = {job_id: [] for job_id in ids}
    artifacts: dict[uuid.UUID, list[Artifact]] = {job_id: [] for job_id in ids}
    if ids:
        for step in session.scalars(
            select(Step).where(Step.job_id.in_(ids)).order_by(Step.position)
        ):
            steps[step.job_id].append(step)
        for artifact in session.scalars(
            select(Artifact).where(Artifact.job_id.in_(ids)).order_by(Artifact.key)
        ):
            artifacts[artifact.job_id].append(artifact)
    return [JobView(job, model, steps[job.id], artifacts[job.id]) for job, model in rows]
