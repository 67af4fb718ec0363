from collections.abc import Iterator

import httpx
import pytest

from modules.buildinfo import VERSION
from modules.settings import Settings
from services.worker import endpoint
from services.worker.readiness import WorkerReadiness


@pytest.fixture(scope="module")
def base_url(database_url: str, redis_base_url: str) -> Iterator[str]:
    """The endpoint of a worker process whose consumer has not started: PostgreSQL and Redis
    answer, but no task is consumed."""
    settings = Settings.model_validate(
        {"database_url": database_url, "broker_url": f"{redis_base_url}/0"}
    )
    server = endpoint.serve("127.0.0.1", 0, WorkerReadiness(settings).check)  # a free port
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_healthz_says_alive_whatever_the_dependencies(base_url: str) -> None:
    response = httpx.get(f"{base_url}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "version": VERSION})


def test_readyz_is_503_until_the_worker_consumes(base_url: str) -> None:
    response = httpx.get(f"{base_url}/readyz")
    assert response.status_code == 503
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["status"] == "ok"
    broker = body["checks"]["broker"]
    assert (broker["status"], broker["detail"]) == (
        "fail",
        "ConnectionError: not consuming: connecting to the broker, or shutting down",
    )


def test_metrics_are_prometheus_text(base_url: str) -> None:
    response = httpx.get(f"{base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")


@pytest.mark.parametrize("path", ["/", "/metric", "/healthz/x", "/favicon.ico"])
def test_other_paths_are_404(base_url: str, path: str) -> None:
    assert httpx.get(f"{base_url}{path}").status_code == 404
