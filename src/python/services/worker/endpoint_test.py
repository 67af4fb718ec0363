from collections.abc import Iterator

import httpx
import pytest

from services.worker import endpoint


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = endpoint.serve("127.0.0.1", 0)  # a port the kernel picks
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_healthz_is_503_until_the_worker_is_ready(base_url: str) -> None:
    response = httpx.get(f"{base_url}/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready"}


def test_metrics_are_prometheus_text(base_url: str) -> None:
    response = httpx.get(f"{base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")


@pytest.mark.parametrize("path", ["/", "/metric", "/healthz/x", "/favicon.ico"])
def test_other_paths_are_404(base_url: str, path: str) -> None:
    assert httpx.get(f"{base_url}{path}").status_code == 404
