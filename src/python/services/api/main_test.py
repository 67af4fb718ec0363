"""The `forge-api` command as a real process: uvicorn, JSON logs, multi-worker metrics, signals."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from pydantic import PostgresDsn

from modules.persistence.migrate import EXIT_UNAVAILABLE, alembic_config
from modules.settings import Settings
from modules.settings.loading import EXIT_CONFIG
from modules.testing.databases import libpq_url
from modules.testing.network import closed_port
from modules.testing.processes import python_subprocess_env
from modules.testing.servers import private_postgres
from services.api.app_test import sample
from services.api.main import PROGRAM
from services.api.testing import ApiProcess


@pytest.fixture()
def api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ApiProcess]:
    workers = getattr(request, "param", 1)
    process = ApiProcess(
        tmp_path,
        FORGE_API_WORKERS=str(workers),
        # Liveness and metrics need no dependencies; keep readiness out of the way.
        FORGE_READINESS_DATABASE="false",
        FORGE_READINESS_STORAGE="off",
    )
    yield process
    if process.process.poll() is None:
        process.stop()


def test_every_output_line_is_json_with_request_ids(api: ApiProcess) -> None:
    response = httpx.get(f"{api.base_url}/healthz", headers={"X-Request-ID": "from-client-1"})
    assert response.headers["x-request-id"] == "from-client-1"
    api.stop()

    lines = api.log_lines()  # json.loads fails the test on any non-JSON line
    assert {line["service"] for line in lines} == {"api"}
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # server lines too
    (access,) = (line for line in lines if line["logger"] == "services.api.access")
    assert access["request_id"] == "from-client-1"
    assert (access["route"], access["status"], access["method"]) == ("/healthz", 200, "GET")


@pytest.mark.parametrize("api", [2], indirect=True)
def test_metrics_add_up_across_worker_processes(api: ApiProcess) -> None:
    requests = 40
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    # New connections each time, so the kernel spreads them over both workers.
    for _ in range(requests):
        assert httpx.get(f"{api.base_url}/healthz").status_code == 200
    scrapes = [httpx.get(f"{api.base_url}/metrics").text for _ in range(4)]
    counts = {sample(text, "forge_http_requests_total", **labels) for text in scrapes}
    assert counts == {requests}  # every scrape, whichever worker serves it, sees all of them
    api.stop()
    served_by = {line["pid"] for line in api.log_lines() if line.get("route") == "/healthz"}
    assert len(served_by) == 2  # both workers served, so the totals above were aggregated


def test_readyz_answers_in_time_on_every_worker_while_postgres_is_frozen(
    tmp_path: Path,
) -> None:
    """Two uvicorn workers, each with a pooled connection to a PostgreSQL whose every process
    is then frozen: each /readyz still answers 503 within the check timeout plus 100 ms, as the
    server measures it (its access line), so the load on this machine's client does not count."""
    timeout_s = 0.5
    with private_postgres() as postgres:
        with alembic_config(Settings(database_url=PostgresDsn(postgres.url))) as config:
            command.upgrade(config, "head")
        api = ApiProcess(
            tmp_path,
            FORGE_API_WORKERS="2",
            FORGE_DATABASE_URL=postgres.url,
            FORGE_READINESS_STORAGE="off",
            FORGE_READINESS_DATABASE_TIMEOUT_S=str(timeout_s),
        )
        try:
            # New connections each time, so that both workers check (and pool a connection).
            assert {httpx.get(f"{api.base_url}/readyz").status_code for _ in range(20)} == {200}
            postgres.freeze()
            time.sleep(0.2)  # past the time a result is reused
            frozen_since = time.time()
            statuses = [
                httpx.get(f"{api.base_url}/readyz", timeout=30).status_code for _ in range(12)
            ]
        finally:
            postgres.thaw()
            api.stop()
    assert statuses == [503] * 12
    frozen = [
        line
        for line in api.log_lines()
        if line.get("route") == "/readyz" and _epoch(line["ts"]) >= frozen_since
    ]
    assert len({line["pid"] for line in frozen}) == 2  # both workers answered while frozen
    durations = [line["duration_ms"] for line in frozen]
    assert len(durations) == 12
    assert max(durations) < (timeout_s + 0.1) * 1000, durations


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def test_invalid_setting_stops_startup_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.api.main"],
        env=python_subprocess_env(FORGE_API_WORKERS="many"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.splitlines() == [
        f"{PROGRAM}: invalid configuration: FORGE_API_WORKERS: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"FORGE_DATABSE_URL": "postgresql+psycopg://forge@db/forge"},
            "FORGE_DATABSE_URL: unknown setting; did you mean FORGE_DATABASE_URL?",
        ),
        (
            {
                "FORGE_ENVIRONMENT": "production",
                "FORGE_DATABASE_URL": "postgresql+psycopg://u:x@db/f",
            },
            "FORGE_S3_SECRET_ACCESS_KEY: must be set in production (its default is for development)",
        ),
        (
            {
                "FORGE_ENVIRONMENT": "production",
                "FORGE_DATABASE_URL": "postgresql+psycopg://forge_app:forge-app-dev-password@db/f",
                "FORGE_S3_SECRET_ACCESS_KEY": "a-secret-of-its-own",
            },
            "FORGE_DATABASE_URL: holds a development secret; production needs one of its own",
        ),
    ],
)
@pytest.mark.parametrize("command", ["serve", "migrate current", "init-storage", "sync-models"])
def test_every_command_refuses_bad_configuration_with_one_line(
    command: str, env: dict[str, str], line: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.api.main", *command.split()],
        env=python_subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_CONFIG
    program = "forge-migrate" if command.startswith("migrate") else PROGRAM
    assert result.stderr.splitlines() == [f"{program}: invalid configuration: {line}"]


def init_storage(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.api.main", "init-storage"],
        env=python_subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def log_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def test_init_storage_creates_the_bucket_once(s3_endpoint_url: str) -> None:
    env = {"FORGE_S3_ENDPOINT_URL": s3_endpoint_url, "FORGE_S3_BUCKET": "forge-init-storage"}
    first, second = init_storage(**env), init_storage(**env)
    assert (first.returncode, second.returncode) == (0, 0)
    assert [line["msg"] for line in log_lines(first.stderr)] == [
        "bucket 'forge-init-storage' created"
    ]
    assert [line["msg"] for line in log_lines(second.stderr)] == [
        "bucket 'forge-init-storage' already exists"
    ]
    assert {line["service"] for line in log_lines(first.stderr)} == {"init-storage"}


def test_init_storage_without_an_endpoint_is_one_json_line() -> None:
    result = init_storage(FORGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}")
    assert result.returncode == 1
    (line,) = log_lines(result.stderr)
    assert line["level"] == "ERROR"
    assert line["msg"].startswith("init-storage failed for http://127.0.0.1:")


def sync_models(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.api.main", "sync-models"],
        env=python_subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture()
def models_database_url(database_url: str) -> Iterator[str]:
    """This process's test database, left without models: the command commits."""
    yield database_url
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("DELETE FROM models")


def test_sync_models_inserts_once_and_refuses_an_edited_version(models_database_url: str) -> None:
    env = {"FORGE_DATABASE_URL": models_database_url}
    first, second = sync_models(**env), sync_models(**env)
    assert (first.returncode, second.returncode) == (0, 0)
    assert [line["msg"] for line in log_lines(first.stderr)] == [
        "models: 4 inserted (stub-image@1, stub-icon@1, stub-image@2, echo@1), 0 unchanged"
    ]
    assert [line["msg"] for line in log_lines(second.stderr)] == ["models: 0 inserted, 4 unchanged"]
    assert {line["service"] for line in log_lines(first.stderr)} == {"sync-models"}

    with psycopg.connect(libpq_url(models_database_url)) as conn:
        conn.execute("UPDATE models SET default_parameters = '{}' WHERE name = 'stub-icon'")
    refused = sync_models(**env)
    assert refused.returncode == 1
    (line,) = log_lines(refused.stderr)
    assert line["level"] == "ERROR"
    assert line["msg"] == (
        "sync-models refused: stub-icon@1 (default_parameters) differ from the catalog: "
        "a model is never edited in place; publish a new version instead"
    )


def test_sync_models_without_a_database_is_one_json_line() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/forge"
    result = sync_models(FORGE_DATABASE_URL=url)
    assert result.returncode == EXIT_UNAVAILABLE
    (line,) = log_lines(result.stderr)
    assert line["level"] == "ERROR"
    assert line["msg"].startswith(f"cannot connect to PostgreSQL at {url}: ")
