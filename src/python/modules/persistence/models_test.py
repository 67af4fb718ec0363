"""The rules the database itself enforces: each bad write must fail on the named constraint."""

import re
import uuid
from collections.abc import Iterable
from datetime import datetime

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from modules.persistence.models import Artifact, Event, Job, Model, Step
from modules.persistence.statuses import ACTIVE_JOB_STATUSES, JobStatus, StepStatus

pytestmark = pytest.mark.anyio

SHA256 = "5e" * 32


@pytest.fixture()
async def ids(db_session: AsyncSession) -> dict[str, uuid.UUID]:
    """A model with two jobs; the first has a step and an artifact."""
    model = Model(
        name="sdxl", version="1.0", task="text-to-image", runner="diffusers", input_schema={}
    )
    db_session.add(model)
    await db_session.flush()
    job = Job(
        model_id=model.id, owner="alice", input={}, idempotency_key="key-1", request_hash=SHA256
    )
    other_job = Job(model_id=model.id, owner="alice", input={})
    db_session.add_all([job, other_job])
    await db_session.flush()
    step = Step(job_id=job.id, position=0, name="generate")
    db_session.add(step)
    await db_session.flush()
    db_session.add(
        Artifact(
            job_id=job.id,
            step_id=step.id,
            name="a.png",
            bucket="forge-artifacts",
            key="a.png",
            content_type="image/png",
            size_bytes=1,
            sha256=SHA256,
        )
    )
    await db_session.flush()
    return {
        "model_id": model.id,
        "job_id": job.id,
        "other_job_id": other_job.id,
        "step_id": step.id,
    }


INSERT_MODEL = "INSERT INTO models (name, version, task, runner, input_schema)"
INSERT_ARTIFACT = (
    "INSERT INTO artifacts (job_id, name, bucket, key, content_type, size_bytes, sha256) "
    "VALUES (:job_id, 'b', 'forge-artifacts', "
)


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        (
            f"{INSERT_MODEL} VALUES ('sdxl', '1.0', 'text-to-image', 'x', '{{}}')",
            "uq_models_name_version",
        ),
        (
            f"{INSERT_MODEL} VALUES ('', '1', 'text-to-image', 'x', '{{}}')",
            "ck_models_name_not_empty",
        ),
        (
            f"{INSERT_MODEL} VALUES ('m', '1', 'text-to-image', 'x', '[]')",
            "ck_models_input_schema_is_object",
        ),
        (
            f"INSERT INTO jobs (model_id, owner, input, idempotency_key, request_hash) "
            f"VALUES (:model_id, 'alice', '{{}}', 'key-1', '{SHA256}')",
            "uq_jobs_owner_idempotency_key",
        ),
        ("UPDATE jobs SET owner = '' WHERE id = :job_id", "ck_jobs_owner_not_empty"),
        (
            "INSERT INTO api_keys (prefix, key_hash, name, owner) "
            "VALUES ('fk_a', 'not-a-hash', 'n', 'o')",
            "ck_api_keys_key_hash_is_sha256",
        ),
        (
            "INSERT INTO api_keys (prefix, key_hash, name, owner) "
            f"VALUES ('fk_a', '{SHA256}', 'n', 'o'), ('fk_a', '{SHA256}', 'm', 'o')",
            "uq_api_keys_prefix",
        ),
        (
            "UPDATE jobs SET request_hash = NULL WHERE id = :job_id",
            "ck_jobs_idempotency_key_with_request_hash",
        ),
        (
            "UPDATE jobs SET request_hash = upper(request_hash) || 'A' WHERE id = :job_id",
            "ck_jobs_request_hash_is_sha256",
        ),
        ("UPDATE jobs SET status = 'paused' WHERE id = :job_id", "ck_jobs_status"),
        ("UPDATE jobs SET priority = -1 WHERE id = :job_id", "ck_jobs_priority_not_negative"),
        ("UPDATE jobs SET attempts = -1 WHERE id = :job_id", "ck_jobs_attempts_not_negative"),
        ("UPDATE jobs SET input = '\"text\"' WHERE id = :job_id", "ck_jobs_input_is_object"),
        (
            "UPDATE jobs SET started_at = now(), finished_at = now() - interval '1 second' "
            "WHERE id = :job_id",
            "ck_jobs_finished_after_started",
        ),
        (
            "INSERT INTO steps (job_id, position, name) VALUES (gen_random_uuid(), 0, 'orphan')",
            "fk_steps_job_id_jobs",
        ),
        (
            "INSERT INTO steps (job_id, position, name) VALUES (:job_id, 0, 'again')",
            "uq_steps_job_id_position",
        ),
        ("UPDATE steps SET position = -1 WHERE id = :step_id", "ck_steps_position_not_negative"),
        ("UPDATE steps SET status = 'canceling' WHERE id = :step_id", "ck_steps_status"),
        (
            "UPDATE steps SET started_at = now(), finished_at = now() - interval '1 second' "
            "WHERE id = :step_id",
            "ck_steps_finished_after_started",
        ),
        # A step of another job: the (job_id, step_id) foreign key refuses it.
        (
            "INSERT INTO events (job_id, seq, step_id, type) VALUES (:other_job_id, 1, :step_id, 'log')",
            "fk_events_job_id_step_id_steps",
        ),
        (
            "INSERT INTO events (job_id, seq, type) VALUES (gen_random_uuid(), 1, 'log')",
            "fk_events_job_id_jobs",
        ),
        (
            "INSERT INTO events (job_id, seq, type) VALUES (:job_id, 1, '')",
            "ck_events_type_not_empty",
        ),
        (
            "INSERT INTO events (job_id, seq, type) VALUES (:job_id, 0, 'log')",
            "ck_events_seq_positive",
        ),
        (
            "INSERT INTO events (job_id, seq, type) VALUES (:job_id, 1, 'a'), (:job_id, 1, 'b')",
            "uq_events_job_id_seq",
        ),
        (
            "UPDATE jobs SET attempts = 4, max_attempts = 3 WHERE id = :job_id",
            "ck_jobs_attempts_within_max",
        ),
        ("UPDATE jobs SET lease_owner = 'w' WHERE id = :job_id", "ck_jobs_lease_owner_with_expiry"),
        (
            f"{INSERT_ARTIFACT} 'b.png', 'image/png', -1, '{SHA256}')",
            "ck_artifacts_size_bytes_not_negative",
        ),
        (
            f"{INSERT_ARTIFACT} 'b.png', 'image/png', 1, '{SHA256.upper()}')",
            "ck_artifacts_sha256_is_hex",
        ),
        (f"{INSERT_ARTIFACT} 'a.png', 'image/png', 1, '{SHA256}')", "uq_artifacts_bucket_key"),
        ("DELETE FROM models WHERE id = :model_id", "fk_jobs_model_id_models"),
    ],
)
async def test_bad_writes_fail_on_the_named_constraint(
    db_session: AsyncSession, ids: dict[str, uuid.UUID], statement: str, constraint: str
) -> None:
    parameters = {name: value for name, value in ids.items() if f":{name}" in statement}
    with pytest.raises(IntegrityError) as raised:
        await db_session.execute(text(statement), parameters)
    assert isinstance(raised.value.orig, psycopg.Error)
    assert raised.value.orig.diag.constraint_name == constraint


@pytest.mark.parametrize(
    ("definition", "statuses"),
    [
        (
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_jobs_status'",
            JobStatus,
        ),
        (
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_steps_status'",
            StepStatus,
        ),
        ("SELECT pg_get_indexdef('ix_jobs_active'::regclass)", ACTIVE_JOB_STATUSES),
    ],
)
async def test_status_sets_in_the_database_match_the_code(
    db_session: AsyncSession, definition: str, statuses: Iterable[str]
) -> None:
    """The drift gate does not compare CHECK expressions or index predicates: this does."""
    sql = await db_session.scalar(text(definition))
    assert isinstance(sql, str)
    assert set(re.findall(r"'(\w+)'", sql)) == set(statuses)


async def test_deleting_a_job_deletes_its_steps_events_and_artifacts(
    db_session: AsyncSession, ids: dict[str, uuid.UUID]
) -> None:
    job_id = ids["job_id"]
    db_session.add(Event(job_id=job_id, seq=1, step_id=ids["step_id"], type="step.started"))
    await db_session.flush()
    await db_session.execute(text("DELETE FROM jobs WHERE id = :job_id"), {"job_id": job_id})
    for table in (Step, Event, Artifact):
        remaining = await db_session.scalar(
            select(func.count()).select_from(table).where(table.job_id == job_id)
        )
        assert remaining == 0, table.__tablename__


async def test_updates_set_updated_at(db_session: AsyncSession) -> None:
    long_ago = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
    model_id = await db_session.scalar(
        text(
            "INSERT INTO models (name, version, task, runner, input_schema, updated_at) "
            "VALUES ('m', '1', 'text-to-image', 'r', '{}', :long_ago) RETURNING id"
        ),
        {"long_ago": long_ago},
    )
    model = await db_session.get(Model, model_id)
    assert model is not None
    assert model.updated_at == long_ago

    model.runner = "other"
    await db_session.flush()  # the trigger's value comes back with the UPDATE

    now = await db_session.scalar(select(func.now()))
    assert model.updated_at == now
