"""The api in-process over ASGI, against the real PostgreSQL and an S3 server over HTTP."""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from fastapi import FastAPI, HTTPException
from pydantic import PostgresDsn
from sqlalchemy import make_url, text

from modules.buildinfo import VERSION
from modules.persistence.migrate import alembic_config
from modules.persistence.schema import ExpectedSchema
from modules.settings import Settings
from modules.storage.s3 import ensure_bucket, make_s3_client
from modules.testing.databases import libpq_url, recreate_database
from modules.testing.network import closed_port, silent_listener
from modules.testing.roles import database_with_roles
from modules.testing.servers import PrivateServer, private_postgres
from services.api.app import create_app
from services.api.dependencies import DatabaseSession

pytestmark = pytest.mark.anyio

TIMEOUT_S = 1.0
# What these tests assert is that /readyz answers instead of hanging on a dead dependency; the
# slack is for 2 busy cores. How close to the timeout it answers is `make bench-api`'s figure.
READINESS_BOUND_S = TIMEOUT_S + 5


def make_settings(**overrides: Any) -> Settings:
    # model_validate skips the environment: tests see only what they set. Every /readyz checks
    # afresh unless a test sets a reuse time.
    return Settings.model_validate(
        {
            "readiness_cache_s": 0,
            "readiness_database_timeout_s": TIMEOUT_S,
            "readiness_storage_timeout_s": TIMEOUT_S,
            **overrides,
        }
    )


@pytest.fixture()
def settings(database_url: str, s3_endpoint_url: str) -> Settings:
    """Healthy dependencies: the real PostgreSQL with a migrated database and an S3 server with
    the bucket created."""
    settings = make_settings(
        database_url=database_url,
        s3_endpoint_url=s3_endpoint_url,
        s3_bucket=f"forge-test-{uuid.uuid4().hex[:12]}",
    )
    ensure_bucket(make_s3_client(settings), settings.s3_bucket)
    return settings


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://forge.test") as client:
            yield client


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert (body["status"], body["title"]) == (status, title)
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_healthz_answers_without_touching_dependencies() -> None:
    # Every dependency points at a closed port: liveness must not care.
    settings = make_settings(
        database_url=f"postgresql+psycopg://forge@127.0.0.1:{closed_port()}/forge",
        s3_endpoint_url=f"http://127.0.0.1:{closed_port()}",
    )
    async with client_for(settings) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": VERSION}


async def test_readyz_passes_with_healthy_dependencies(settings: Settings) -> None:
    async with client_for(settings) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"].keys() == {"database", "storage"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert check["latency_ms"] > 0
    (head,) = ExpectedSchema.from_migrations().heads
    assert body["checks"]["database"]["detail"] == f"at revision {head}"
    assert response.headers["cache-control"] == "no-store"


@pytest.fixture(params=["closed port", "silent listener"])
def dead_port(request: pytest.FixtureRequest) -> Iterator[int]:
    if request.param == "closed port":
        yield closed_port()
    else:
        with silent_listener() as port:
            yield port


@pytest.mark.parametrize(
    ("down", "setting", "url"),
    [
        ("database", "database_url", "postgresql+psycopg://forge@127.0.0.1:{port}/forge"),
        ("storage", "s3_endpoint_url", "http://127.0.0.1:{port}"),
    ],
)
async def test_readyz_fails_in_time_when_a_dependency_is_down(
    settings: Settings, dead_port: int, down: str, setting: str, url: str
) -> None:
    broken = settings.model_copy(update={setting: url.format(port=dead_port)})
    async with client_for(broken) as client:
        started = time.monotonic()
        response = await client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        name: "fail" if name == down else "ok" for name in ("database", "storage")
    }
    assert checks[down]["detail"]
    assert elapsed < READINESS_BOUND_S


def set_schema_revision(database_url: str, revision: str | None) -> None:
    """Record `revision` as the database's (None: as if never migrated)."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("DELETE FROM alembic_version")
        if revision is not None:
            conn.execute("INSERT INTO alembic_version VALUES (%s)", (revision,))


@pytest.fixture()
def scratch_database_url(postgres_admin_url: str, database_url: str) -> str:
    """A migrated database of this test's own, which it may break."""
    name = f"{make_url(database_url).database}_scratch"
    url = recreate_database(postgres_admin_url, name)
    with alembic_config(Settings(database_url=PostgresDsn(url))) as config:
        command.upgrade(config, "head")
    return url


@pytest.mark.parametrize(
    ("recorded", "detail"),
    [
        (None, "SchemaMismatch: not migrated: no revision applied, code expects {head}"),
        (
            "0123456789ab",
            "SchemaMismatch: schema ahead: database at 0123456789ab, code expects {head}",
        ),
    ],
)
async def test_readyz_fails_when_the_schema_is_not_the_codes(
    settings: Settings, scratch_database_url: str, recorded: str | None, detail: str
) -> None:
    set_schema_revision(scratch_database_url, recorded)
    scratch = settings.model_copy(update={"database_url": scratch_database_url})
    async with client_for(scratch) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    (head,) = ExpectedSchema.from_migrations().heads
    database = response.json()["checks"]["database"]
    assert (database["status"], database["detail"]) == ("fail", detail.format(head=head))


async def test_readyz_passes_with_the_application_role(
    settings: Settings, postgres_admin_url: str, database_url: str
) -> None:
    """The api connects as the role that may only read and write rows (see roles_test.py)."""
    name = f"{make_url(database_url).database}_api_roles"
    with database_with_roles(postgres_admin_url, name) as (_, app_url):
        async with client_for(settings.model_copy(update={"database_url": app_url})) as client:
            response = await client.get("/readyz")
    assert response.status_code == 200, response.text


@pytest.fixture()
def frozen_postgres(settings: Settings) -> Iterator[tuple[PrivateServer, Settings]]:
    """A private, migrated PostgreSQL the test can freeze, with settings that use it."""
    with private_postgres() as server:
        with alembic_config(Settings(database_url=PostgresDsn(server.url))) as config:
            command.upgrade(config, "head")
        yield server, settings.model_copy(update={"database_url": server.url})


async def test_every_readyz_answers_in_time_while_postgresql_is_frozen(
    frozen_postgres: tuple[PrivateServer, Settings],
) -> None:
    """A frozen server (SIGSTOP) accepts connections and answers nothing. A pooled connection
    that was busy when it froze is what used to hang: psycopg's cleanup after the cancelled
    query waited 10 s for the server, inside the check."""
    dependency, frozen = frozen_postgres
    async with client_for(frozen) as client:
        assert (await client.get("/readyz")).status_code == 200  # the pool holds a connection
        dependency.freeze()
        try:
            for _ in range(4):
                started = time.monotonic()
                response = await client.get("/readyz")
                elapsed = time.monotonic() - started
                assert response.status_code == 503
                assert response.json()["checks"]["database"]["status"] == "fail"
                assert elapsed < READINESS_BOUND_S
                await asyncio.sleep(0.2)
        finally:
            dependency.thaw()
        assert await eventually_status(client, 200, within_s=15)


async def test_readyz_does_not_ask_redis(settings: Settings) -> None:
    """The api sends no run messages (ADR 019): a Redis outage must not take it out of
    service."""
    unreachable = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{closed_port()}/0"})
    async with client_for(unreachable) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"].keys() == {"database", "storage"}


async def eventually_status(client: httpx.AsyncClient, status: int, within_s: float) -> bool:
    """Whether /readyz answers `status` within `within_s`, asking continuously."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if (await client.get("/readyz")).status_code == status:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_probe_storm_costs_postgresql_one_check(
    settings: Settings, scratch_database_url: str
) -> None:
    """Concurrent /readyz share one check, and its result is reused: counted by PostgreSQL, as
    reads of the schema's revision."""
    reusing = settings.model_copy(
        update={"database_url": scratch_database_url, "readiness_cache_s": 5.0}
    )
    before = revision_reads(scratch_database_url)
    async with client_for(reusing) as client:
        responses = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
    assert {response.status_code for response in responses} == {200}
    assert revision_reads(scratch_database_url) - before == 1


def revision_reads(database_url: str) -> int:
    """How often the database's alembic_version was read, by PostgreSQL's statistics, once
    every other session on it has ended (a session reports its reads by the time it ends)."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "sessions on the database did not end"
            time.sleep(0.05)
        row = conn.execute(
            "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
            " WHERE relname = 'alembic_version'"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_readyz_recovers_when_a_dependency_returns(settings: Settings) -> None:
    """The same app goes 503 -> 200 without a restart once the bucket exists."""
    missing = settings.model_copy(update={"s3_bucket": f"later-{uuid.uuid4().hex[:12]}"})
    async with client_for(missing) as client:
        first = await client.get("/readyz")
        ensure_bucket(make_s3_client(missing), missing.s3_bucket)
        second = await client.get("/readyz")
    assert (first.status_code, second.status_code) == (503, 200)
    assert "does not exist" in first.json()["checks"]["storage"]["detail"]


async def test_permissive_storage_check_accepts_a_missing_bucket(settings: Settings) -> None:
    permissive = settings.model_copy(
        update={"s3_bucket": "not-created-yet", "readiness_storage": "permissive"}
    )
    async with client_for(permissive) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    storage = response.json()["checks"]["storage"]
    assert storage["status"] == "ok"
    assert "does not exist yet" in storage["detail"]


async def test_disabled_checks_are_reported_and_do_not_run() -> None:
    settings = make_settings(
        database_url=f"postgresql+psycopg://forge@127.0.0.1:{closed_port()}/forge",
        readiness_database=False,
        readiness_storage="off",
    )
    async with client_for(settings) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    disabled = {"status": "disabled", "latency_ms": None, "detail": None}
    assert response.json()["checks"] == {
        "database": disabled,
        "storage": disabled,
    }


async def test_unknown_route_is_a_problem(settings: Settings) -> None:
    async with client_for(settings) as client:
        response = await client.get("/v1/nothing-here")
    body = assert_problem(response, 404, "Not Found")
    assert body["instance"] == "/v1/nothing-here"


async def test_wrong_method_is_a_problem_with_allow(settings: Settings) -> None:
    async with client_for(settings) as client:
        response = await client.post("/healthz")
    assert_problem(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "GET"


def app_with_test_routes(settings: Settings) -> FastAPI:
    """The real app plus routes that exercise what /v1 has no endpoint for yet."""
    app = create_app(settings)

    @app.get("/v1/test-items/{item_id}")
    async def get_test_item(item_id: int, limit: int = 10) -> dict[str, int]:
        return {"item_id": item_id, "limit": limit}

    @app.get("/v1/test-crash")
    async def crash() -> None:
        raise RuntimeError("secret internal state")

    @app.get("/v1/test-conflict")
    async def conflict() -> None:
        raise HTTPException(409, detail={"job": "abc", "reason": "already running"})

    @app.get("/v1/test-database")
    async def current_database(session: DatabaseSession) -> str:
        name: str = await session.scalar(text("SELECT current_database()"))
        return name

    return app


async def test_routes_get_a_session_from_the_lifespans_engine(settings: Settings) -> None:
    async with serving(app_with_test_routes(settings)) as client:
        response = await client.get("/v1/test-database")
    assert response.json() == settings.database_url.path.lstrip("/")  # type: ignore[union-attr]


async def test_raised_http_errors_become_problems(settings: Settings) -> None:
    async with serving(app_with_test_routes(settings)) as client:
        response = await client.get("/v1/test-conflict")
    body = assert_problem(response, 409, "Conflict")
    assert body["detail"] == '{"job": "abc", "reason": "already running"}'


async def test_validation_failure_lists_every_field(settings: Settings) -> None:
    async with serving(app_with_test_routes(settings)) as client:
        response = await client.get("/v1/test-items/abc", params={"limit": "many"})
    body = assert_problem(response, 422, "Unprocessable Entity")
    assert sorted(error["loc"] for error in body["errors"]) == [
        ["path", "item_id"],
        ["query", "limit"],
    ]
    assert "many" not in response.text  # the offending input is not echoed


async def test_unhandled_exception_is_a_500_problem_logged_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(app_with_test_routes(settings)) as client:
        response = await client.get("/v1/test-crash", headers={"X-Request-ID": "crash-1"})
    body = assert_problem(response, 500, "Internal Server Error")
    assert body["request_id"] == "crash-1"
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1
    assert "secret internal state" in str(tracebacks[0].exc_info[1])  # type: ignore[index]


@pytest.mark.parametrize(
    ("supplied", "kept"),
    [
        ("client-abc.123", True),
        ("x" * 129, False),
        ("evil\nX-Injected: 1", False),
        ("caf\u00e9", False),
        (None, False),
    ],
)
async def test_request_id_is_kept_only_when_sane(
    settings: Settings, supplied: str | None, kept: bool
) -> None:
    headers = {} if supplied is None else {"X-Request-ID": supplied}
    async with client_for(settings) as client:
        # httpx refuses to send some of these values itself; send raw bytes.
        raw = [(k.encode(), v.encode("utf-8")) for k, v in headers.items()]
        response = await client.get("/healthz", headers=raw)
    returned = response.headers["x-request-id"]
    if kept:
        assert returned == supplied
    else:
        assert returned != supplied
        assert len(returned) == 32


async def test_access_log_carries_request_id_route_and_status(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.api.access")
    async with serving(app_with_test_routes(settings)) as client:
        await client.get("/v1/test-items/7", headers={"X-Request-ID": "trace-7"})
    (record,) = (r for r in caplog.records if r.name == "services.api.access")
    assert record.__dict__["route"] == "/v1/test-items/{item_id}"
    assert record.__dict__["status"] == 200
    assert record.__dict__["path"] == "/v1/test-items/7"


def sample(metrics_text: str, name: str, **labels: str) -> float:
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{rendered}}} " if labels else f"{name} "
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


async def test_metrics_count_requests_by_route_template(settings: Settings) -> None:
    labels = {"method": "GET", "route": "/v1/test-items/{item_id}", "status": "200"}
    async with serving(app_with_test_routes(settings)) as client:
        before = (await client.get("/metrics")).text
        for item in range(3):
            await client.get(f"/v1/test-items/{item}")
        await client.get("/no/such/path")
        response = await client.get("/metrics")
    after = response.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    total = "forge_http_requests_total"
    assert sample(after, total, **labels) - sample(before, total, **labels) == 3
    histogram = "forge_http_request_duration_seconds_count"
    assert sample(after, histogram, **labels) - sample(before, histogram, **labels) == 3
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert sample(after, total, **unmatched) - sample(before, total, **unmatched) == 1
    assert "/v1/test-items/0" not in after  # raw paths never become labels
    # The scrape itself is in flight while it renders.
    assert sample(after, "forge_http_requests_in_flight") == 1
