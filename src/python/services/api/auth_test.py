"""API keys and ownership over ASGI, against the real PostgreSQL: who may call /v1, whose jobs
they see, and the limits on what they send."""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.orm import Session

from modules.auth import keys
from modules.auth.keys import Principal
from modules.catalog.sync import sync
from modules.persistence.models import ApiKey, Artifact, Step
from modules.settings import Settings
from services.api.app import create_app
from services.api.app_test import assert_problem, serving, settings
from services.api.auth import KeyCache

__all__ = ["settings"]  # the fixture, from app_test

pytestmark = pytest.mark.anyio

JOB = {"model": "stub-image@1", "input": {"prompt": "a fox"}}


@pytest.fixture()
def engine(settings: Settings) -> Iterator[Engine]:
    """The test database without jobs or keys, with the catalog's models."""
    engine = create_engine(str(settings.database_url))
    with Session(engine) as session, session.begin():
        session.execute(text("TRUNCATE jobs, api_keys CASCADE"))
        sync(session)
    yield engine
    engine.dispose()


def new_key(engine: Engine, owner: str) -> str:
    with Session(engine) as session, session.begin():
        return keys.create(session, name=f"{owner}-key", owner=owner).key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as client:
        yield client


@pytest.fixture()
def uncached(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_key_cache_s": 0})


def assert_unauthorized(response: httpx.Response, challenge: str) -> None:
    assert_problem(response, 401, "Unauthorized")
    assert response.headers["www-authenticate"] == challenge


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, "Bearer"),
        ({"Authorization": "Basic Zm9yZ2U6Zm9yZ2U="}, "Bearer"),
        ({"Authorization": "Bearer not-a-key"}, 'Bearer error="invalid_token"'),
        ({"Authorization": "Bearer " + keys.generate()}, 'Bearer error="invalid_token"'),
    ],
    ids=["missing", "another scheme", "malformed", "unknown"],
)
async def test_v1_refuses_calls_without_a_valid_key(
    client: httpx.AsyncClient, engine: Engine, headers: dict[str, str], challenge: str
) -> None:
    for method, path in [("GET", "/v1/models"), ("GET", "/v1/jobs"), ("POST", "/v1/jobs")]:
        response = await client.request(method, path, headers=headers, json=JOB)
        assert_unauthorized(response, challenge)
    # Operations stay open.
    for path in ("/healthz", "/metrics"):
        assert (await client.get(path)).status_code == 200


async def test_a_revoked_key_is_refused_and_use_is_recorded_once_a_minute(
    uncached: Settings, engine: Engine
) -> None:
    key = new_key(engine, "alice")
    prefix = key[: keys.PREFIX_LENGTH]
    async with serving(create_app(uncached)) as client:
        assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200
        with Session(engine) as session:
            first = session.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == prefix))
        assert first is not None
        assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200
        with Session(engine) as session, session.begin():
            again = session.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == prefix))
            assert again == first  # within the minute: no write
            session.execute(
                update(ApiKey)
                .where(ApiKey.prefix == prefix)
                .values(last_used_at=ApiKey.last_used_at - keys.LAST_USED_PRECISION)
            )
        assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200
        with Session(engine) as session, session.begin():
            later = session.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == prefix))
            assert later is not None
            assert later > first  # a minute old: written again
            assert keys.revoke(session, prefix) is not None
        response = await client.get("/v1/models", headers=bearer(key))
    assert_unauthorized(response, 'Bearer error="invalid_token"')


async def test_a_process_trusts_a_verified_key_for_the_cache_time(
    settings: Settings, engine: Engine
) -> None:
    """Revocation reaches a process that verified the key within FORGE_API_KEY_CACHE_S."""
    key = new_key(engine, "alice")
    cached = settings.model_copy(update={"api_key_cache_s": 300})
    async with serving(create_app(cached)) as client:
        assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200
        with Session(engine) as session, session.begin():
            keys.revoke(session, key[: keys.PREFIX_LENGTH])
        assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200
    async with serving(create_app(cached)) as client:  # a process that never verified it
        response = await client.get("/v1/models", headers=bearer(key))
    assert_unauthorized(response, 'Bearer error="invalid_token"')


def test_the_key_cache_forgets_after_its_time() -> None:
    cache = KeyCache(ttl_s=0.05)
    principal = Principal("alice", "fk_00000000")
    cache.put("digest", principal)
    assert cache.get("digest") == principal
    time.sleep(0.1)
    assert cache.get("digest") is None
    uncached = KeyCache(ttl_s=0)
    uncached.put("digest", principal)
    assert uncached.get("digest") is None


async def test_two_owners_see_and_cancel_only_their_own_jobs(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    alice, bob = bearer(new_key(engine, "alice")), bearer(new_key(engine, "bob"))
    created = await client.post("/v1/jobs", json=JOB, headers=alice)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    add_artifact(engine, uuid.UUID(job_id))

    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events", f"/v1/jobs/{job_id}/artifacts"):
        assert_problem(await client.get(path, headers=bob), 404, "Not Found")
        assert (await client.get(path, headers=alice)).status_code == 200
    assert (await client.get("/v1/jobs", headers=bob)).json()["data"] == []
    assert [job["id"] for job in (await client.get("/v1/jobs", headers=alice)).json()["data"]] == [
        job_id
    ]
    artifacts = (await client.get(f"/v1/jobs/{job_id}/artifacts", headers=alice)).json()["data"]
    assert [artifact["name"] for artifact in artifacts] == ["image.png"]

    assert_problem(await client.post(f"/v1/jobs/{job_id}/cancel", headers=bob), 404, "Not Found")
    assert (await client.get(f"/v1/jobs/{job_id}", headers=alice)).json()["status"] == "queued"
    canceled = await client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
    assert canceled.json()["status"] == "canceled"


def add_artifact(engine: Engine, job_id: uuid.UUID) -> None:
    with Session(engine) as session, session.begin():
        step = Step(job_id=job_id, position=0, name="render")
        session.add(step)
        session.flush()
        session.add(
            Artifact(
                job_id=job_id,
                step_id=step.id,
                name="image.png",
                bucket="forge-test",
                key=f"jobs/{job_id}/0/image.png",
                content_type="image/png",
                size_bytes=1,
                sha256="0" * 64,
            )
        )


async def test_an_idempotency_key_is_per_owner(client: httpx.AsyncClient, engine: Engine) -> None:
    alice, bob = bearer(new_key(engine, "alice")), bearer(new_key(engine, "bob"))
    retry = {"Idempotency-Key": "nightly-1"}
    first = await client.post("/v1/jobs", json=JOB, headers=alice | retry)
    other = await client.post("/v1/jobs", json=JOB, headers=bob | retry)
    again = await client.post("/v1/jobs", json=JOB, headers=alice | retry)
    assert (first.status_code, other.status_code, again.status_code) == (202, 202, 200)
    assert first.json()["id"] != other.json()["id"]
    assert again.json()["id"] == first.json()["id"]


async def test_a_body_or_an_input_too_large_is_413(settings: Settings, engine: Engine) -> None:
    key = bearer(new_key(engine, "alice"))
    limits = settings.model_copy(update={"api_max_body_bytes": 4096, "job_max_input_bytes": 512})
    async with serving(create_app(limits)) as client:
        body = {"model": "stub-image@1", "input": {"prompt": "x" * 5000}}
        too_big = await client.post("/v1/jobs", json=body, headers=key)
        assert_problem(too_big, 413, too_big.json()["title"])
        # Streamed without a Content-Length: counted as it arrives.
        streamed = await client.post(
            "/v1/jobs",
            content=chunks(json.dumps({"model": "stub-image@1", "input": {"prompt": "x" * 5000}})),
            headers=key | {"Content-Type": "application/json"},
        )
        assert "content-length" not in streamed.request.headers
        assert_problem(streamed, 413, streamed.json()["title"])
        body = {"model": "stub-image@1", "input": {"prompt": "x" * 1000}}
        input_too_big = await client.post("/v1/jobs", json=body, headers=key)
        problem = assert_problem(input_too_big, 413, input_too_big.json()["title"])
        assert "at most 512" in problem["detail"]
        assert (await client.get("/v1/jobs", headers=key)).json()["data"] == []


async def chunks(text: str) -> AsyncIterator[bytes]:
    for start in range(0, len(text), 1000):
        yield text[start : start + 1000].encode()


async def test_the_queue_cap_is_429_with_retry_after(settings: Settings, engine: Engine) -> None:
    alice, bob = bearer(new_key(engine, "alice")), bearer(new_key(engine, "bob"))
    capped = settings.model_copy(
        update={"job_max_queued_per_owner": 2, "job_queue_full_retry_after_s": 7}
    )
    async with serving(create_app(capped)) as client:
        for _ in range(2):
            assert (await client.post("/v1/jobs", json=JOB, headers=alice)).status_code == 202
        full = await client.post("/v1/jobs", json=JOB, headers=alice)
        assert_problem(full, 429, "Too Many Requests")
        assert full.headers["retry-after"] == "7"
        assert (await client.post("/v1/jobs", json=JOB, headers=bob)).status_code == 202


async def test_no_log_line_holds_a_key(
    uncached: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good, revoked = new_key(engine, "alice"), new_key(engine, "alice")
    with Session(engine) as session, session.begin():
        keys.revoke(session, revoked[: keys.PREFIX_LENGTH])
    async with serving(create_app(uncached)) as client:
        await client.post("/v1/jobs", json=JOB, headers=bearer(good))
        await client.get("/v1/jobs", headers=bearer(revoked))
        await client.get("/v1/jobs", headers=bearer(good[:-1]))  # well-formed, wrong secret
    lines = [_rendered(record) for record in caplog.records]
    assert any(revoked[: keys.PREFIX_LENGTH] in line for line in lines)  # named by its prefix
    for key in (good, revoked, good[:-1]):
        secret = key[keys.PREFIX_LENGTH + 1 :]
        assert not any(secret in line for line in lines)


def _rendered(record: logging.LogRecord) -> str:
    fields: dict[str, Any] = record.__dict__
    return record.getMessage() + repr(fields)
