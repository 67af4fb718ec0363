import uuid
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from modules.persistence.base import JsonObject
from modules.persistence.models import Artifact, Event, Job, Model, Step
from modules.persistence.repositories import (
    ArtifactRepository,
    EventRepository,
    JobRepository,
    ModelRepository,
    StepRepository,
)
from modules.persistence.statuses import JobStatus, StepStatus

pytestmark = pytest.mark.anyio

SCHEMA: JsonObject = {
    "type": "object",
    "properties": {"prompt": {"type": "string"}},
    "required": ["prompt"],
}


async def create_model(
    session: AsyncSession, name: str = "sdxl", task: str = "text-to-image"
) -> Model:
    return await ModelRepository(session).create(
        Model(name=name, version="1.0", task=task, runner="diffusers", input_schema=SCHEMA)
    )


async def test_models_round_trip(db_session: AsyncSession) -> None:
    models = ModelRepository(db_session)
    image = await create_model(db_session)
    speech = await create_model(db_session, name="bark", task="text-to-speech")
    db_session.expunge_all()  # read back from the database, not the identity map

    loaded = await models.get(image.id)
    assert loaded is not None
    assert (loaded.name, loaded.input_schema, loaded.default_parameters) == ("sdxl", SCHEMA, {})
    assert loaded.created_at == loaded.updated_at
    assert await models.get(uuid.uuid4()) is None
    assert [m.id for m in await models.list()] == [speech.id, image.id]
    assert [m.id for m in await models.list(task="text-to-image")] == [image.id]


async def test_jobs_round_trip(db_session: AsyncSession) -> None:
    jobs = JobRepository(db_session)
    model = await create_model(db_session)
    job = await jobs.create(
        Job(
            model_id=model.id,
            input={"prompt": "a fox", "steps": 30, "tags": ["a", None]},
            idempotency_key="request-1",
            request_hash="ab" * 32,
        )
    )
    db_session.expunge_all()

    loaded = await jobs.get(job.id)
    assert loaded is not None
    assert (loaded.status, loaded.attempts, loaded.priority) == (JobStatus.QUEUED, 0, 0)
    assert loaded.input == {"prompt": "a fox", "steps": 30, "tags": ["a", None]}
    assert (loaded.output, loaded.error, loaded.started_at, loaded.finished_at) == (None,) * 4
    assert (await jobs.get_by_idempotency_key("request-1")) is loaded
    assert await jobs.get_by_idempotency_key("request-2") is None


async def test_active_jobs_are_listed_oldest_first(db_session: AsyncSession) -> None:
    jobs = JobRepository(db_session)
    model = await create_model(db_session)
    created = [
        await jobs.create(Job(model_id=model.id, input={}, status=status)) for status in JobStatus
    ]
    # One transaction gives every row the same now(): spread them out, newest first.
    for age, job in enumerate(created):
        await db_session.execute(
            text("UPDATE jobs SET created_at = now() - make_interval(secs => :age) WHERE id = :id"),
            {"age": age, "id": job.id},
        )
    db_session.expunge_all()

    active = await jobs.list_active()
    assert [job.status for job in active] == [
        JobStatus.CANCELING,
        JobStatus.RUNNING,
        JobStatus.QUEUED,
    ]
    assert [job.status for job in await jobs.list_active(limit=1)] == [JobStatus.CANCELING]
    assert [job.id for job in await jobs.list_for_model(model.id)] == [job.id for job in created]


async def test_steps_events_and_artifacts_round_trip(db_session: AsyncSession) -> None:
    model = await create_model(db_session)
    job = await JobRepository(db_session).create(Job(model_id=model.id, input={}))
    steps = StepRepository(db_session)
    events = EventRepository(db_session)
    artifacts = ArtifactRepository(db_session)

    second = await steps.create(Step(job_id=job.id, position=1, name="upscale"))
    first = await steps.create(
        Step(job_id=job.id, position=0, name="generate", status=StepStatus.RUNNING)
    )
    appended = [
        await events.create(Event(job_id=job.id, step_id=first.id, type="log", payload={"n": n}))
        for n in range(3)
    ]
    artifact = await artifacts.create(
        Artifact(
            job_id=job.id,
            step_id=second.id,
            bucket="forge-artifacts",
            key=f"jobs/{job.id}/image.png",
            content_type="image/png",
            size_bytes=2**40,
            sha256="f" * 64,
        )
    )
    db_session.expunge_all()

    assert [step.name for step in await steps.list_for_job(job.id)] == ["generate", "upscale"]
    loaded_step = await steps.get(first.id)
    assert loaded_step is not None
    assert loaded_step.status == StepStatus.RUNNING
    ids = [event.id for event in appended]
    assert ids == sorted(ids)
    after_first = await events.list_for_job(job.id, after_id=ids[0])
    assert [(event.id, event.payload) for event in after_first] == [
        (ids[1], {"n": 1}),
        (ids[2], {"n": 2}),
    ]
    assert [event.id for event in await events.list_for_job(job.id, limit=1)] == ids[:1]
    (loaded,) = await artifacts.list_for_job(job.id)
    assert (loaded.id, loaded.size_bytes, loaded.step_id) == (artifact.id, 2**40, second.id)
    assert isinstance(loaded.created_at, datetime)


async def test_commits_in_a_test_stay_inside_the_test(db_session: AsyncSession) -> None:
    """The fixture's outer transaction turns commits into savepoints (nothing leaks out)."""
    model = await create_model(db_session, name="committed")
    await db_session.commit()
    assert await ModelRepository(db_session).get(model.id) is not None


async def test_no_rows_from_other_tests(db_session: AsyncSession) -> None:
    assert await ModelRepository(db_session).list() == []
