from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from services.worker.celery_app import app
from services.worker.tasks import PING


@pytest.fixture(scope="module")
def worker_app(celery_urls: tuple[str, str]) -> Iterator[Celery]:
    """The worker's app, on this test process's Redis databases, with a worker in a thread."""
    broker_url, backend_url = celery_urls
    # The app read the default URLs when it was imported and has not connected yet.
    app.conf.update(broker_url=broker_url, result_backend=backend_url)
    with start_worker(app, perform_ping_check=False):
        yield app


def test_ping_round_trips_through_the_broker(worker_app: Celery) -> None:
    result = worker_app.send_task(PING)
    reply = result.get(timeout=20)
    assert result.state == "SUCCESS"
    assert reply["pong"] is True
    assert isinstance(reply["worker"], str)
    assert {"pid", "version", "revision"} <= reply.keys()
