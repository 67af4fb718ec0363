"""The worker's readiness when its broker dies or hangs: a worker on a private Redis that the
tests kill and freeze, and whose metrics are scraped before it has run anything.

Durations are the worker's own (its endpoint's request log), so the load on this machine's
test client does not count."""

import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from modules.testing.servers import PrivateRedis, private_redis
from services.worker.testing import WorkerProcess

TIMEOUT_S = 0.5
# The readiness contract: an answer within the check timeout plus 100 ms.
BOUND_MS = (TIMEOUT_S + 0.1) * 1000
REUSE_S = 0.1  # how long a result may be reused (the default)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def worker(
    redis_server: PrivateRedis, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        tmp_path_factory.mktemp("worker") / "stdout",
        FORGE_BROKER_URL=f"{redis_server.url}/0",
        FORGE_RESULT_BACKEND_URL=f"{redis_server.url}/1",
        FORGE_DATABASE_URL=database_url,
        FORGE_READINESS_BROKER_TIMEOUT_S=str(TIMEOUT_S),
        FORGE_READINESS_DATABASE_TIMEOUT_S=str(TIMEOUT_S),
        FORGE_READINESS_CACHE_S=str(REUSE_S),
        FORGE_LOG_LEVEL="DEBUG",  # the endpoint's request lines, with their durations
    )
    yield process
    process.stop()


def test_metrics_of_a_worker_that_ran_nothing_are_not_empty(worker: WorkerProcess) -> None:
    text = worker.get("/metrics").text
    assert 'forge_build_info{revision="' in text
    assert 'forge_worker_tasks_received_total{task="health.ping"} 0.0' in text
    assert 'forge_worker_tasks_failed_total{task="health.ping"} 0.0' in text
    assert "process_start_time_seconds " in text


def readyz_durations_ms(worker: WorkerProcess, since: float) -> list[float]:
    """The duration of every /readyz the worker answered after `since` (epoch seconds)."""
    return [
        line["duration_ms"]
        for line in worker.log_lines()
        if line.get("path") == "/readyz" and datetime.fromisoformat(line["ts"]).timestamp() >= since
    ]


def test_readyz_is_503_in_time_when_the_broker_dies_and_200_once_it_is_back(
    worker: WorkerProcess, redis_server: PrivateRedis
) -> None:
    redis_server.kill()
    try:
        time.sleep(REUSE_S)  # a result from before may be reused this long
        since = time.time()
        statuses = [worker.get("/readyz").status_code for _ in range(5)]
        assert worker.get("/healthz").status_code == 200  # alive, only not ready
    finally:
        redis_server.start()
    assert statuses == [503] * 5
    durations = readyz_durations_ms(worker, since)
    assert len(durations) == 5
    assert max(durations) < BOUND_MS, durations
    worker.wait_for_readyz(200, within_s=60)  # once Celery has reconnected


def test_every_readyz_answers_in_time_while_the_broker_is_frozen(
    worker: WorkerProcess, redis_server: PrivateRedis
) -> None:
    redis_server.freeze()
    try:
        time.sleep(REUSE_S)
        since = time.time()
        answers = [worker.get("/readyz") for _ in range(5)]
    finally:
        redis_server.thaw()
    assert [answer.status_code for answer in answers] == [503] * 5
    checks = answers[-1].json()["checks"]
    assert (checks["broker"]["status"], checks["database"]["status"]) == ("fail", "ok")
    durations = readyz_durations_ms(worker, since)
    assert len(durations) == 5
    assert max(durations) < BOUND_MS, durations
    worker.wait_for_readyz(200, within_s=60)
