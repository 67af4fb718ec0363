"""The worker CLI as it runs in production: a prefork worker in its own process, on Redis.

The worker process imports this module first, which registers the test-only tasks below on it.
"""

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery, shared_task

from modules.buildinfo import VERSION
from modules.workqueue import make_celery
from services.worker.testing import CLI, WorkerProcess

logger = logging.getLogger(__name__)


@shared_task(name="test.fail")
def fail() -> None:
    logger.info("about to fail")
    sys.stdout.write("written to stdout\n")
    raise RuntimeError("failing on purpose")


@shared_task(name="test.meet")
def meet(redis_url: str, key: str, count: int) -> int:
    """Returns this process's pid once `count` of these tasks run at the same time (or after
    20 s): tasks that meet ran in different pool processes."""
    client = redis.Redis.from_url(redis_url)
    client.incr(key)
    deadline = time.monotonic() + 20
    while int(client.get(key) or 0) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


@shared_task(name="test.die_once")
def die_once(redis_url: str, key: str) -> int:
    """Kills its own pool process on the first attempt; returns the attempt number after."""
    attempt = int(redis.Redis.from_url(redis_url).incr(key))
    if attempt == 1:
        os._exit(1)  # the process vanishes mid-task, as on an OOM kill
    return attempt


@dataclass(frozen=True)
class RunningWorker:
    process: WorkerProcess
    env: dict[str, str]
    metrics_url: str
    stdout: Path
    client: Celery
    redis_url: str


@pytest.fixture(scope="module")
def worker(
    celery_urls: tuple[str, str], database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    broker_url, backend_url = celery_urls
    process = WorkerProcess(
        tmp_path_factory.mktemp("worker") / "stdout",
        preamble=f"import {__name__}",  # registers the test tasks above
        FORGE_BROKER_URL=broker_url,
        FORGE_RESULT_BACKEND_URL=backend_url,
        FORGE_WORKER_CONCURRENCY="2",
        FORGE_LOG_LEVEL="INFO",
        FORGE_DATABASE_URL=database_url,
    )
    try:
        yield RunningWorker(
            process=process,
            env=process.env,
            metrics_url=f"{process.base_url}/metrics",
            stdout=process.stdout,
            client=make_celery(
                "test-client", broker_url, result_backend=backend_url, task_ignore_result=False
            ),
            redis_url=backend_url,
        )
    finally:
        process.stop()


def test_healthz_says_alive_and_readyz_ready_once_the_worker_consumes(
    worker: RunningWorker,
) -> None:
    health = worker.process.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok", "version": VERSION})
    ready = worker.process.get("/readyz")
    assert ready.status_code == 200
    assert {name: check["status"] for name, check in ready.json()["checks"].items()} == {
        "broker": "ok",
        "database": "ok",
    }


def test_cli_ping_round_trips(worker: RunningWorker) -> None:
    run = _cli(worker, "ping", "--timeout", "20")
    assert run.returncode == 0, run.stderr
    reply = json.loads(run.stdout)
    assert reply["pong"] is True
    assert reply["worker"].startswith("celery@")
    assert reply["database"] == "ok"  # the pool process's own engine reached PostgreSQL


def test_cli_passes_celery_commands_through(worker: RunningWorker) -> None:
    node = f"celery@{socket.gethostname()}"  # naming it: Celery stops waiting once it replied
    run = _cli(worker, "celery", "inspect", "ping", "--destination", node, "--timeout", "10")
    assert run.returncode == 0, run.stderr
    assert "pong" in run.stdout
    assert "1 node online." in run.stdout


def test_task_metrics_add_up_across_pool_processes(worker: RunningWorker) -> None:
    before = _scrape(worker.metrics_url)
    pings = [worker.client.send_task("health.ping") for _ in range(5)]
    meeting = [
        worker.client.send_task("test.meet", args=[worker.redis_url, "test.meet", 2])
        for _ in range(2)
    ]
    assert all(ping.get(timeout=20)["pong"] for ping in pings)
    assert len({task.get(timeout=30) for task in meeting}) == 2  # both pool processes ran one

    expected = {
        (metric, task): count
        for task, count in (("health.ping", 5), ("test.meet", 2))
        for metric in (
            "forge_worker_tasks_received_total",
            "forge_worker_tasks_started_total",
            "forge_worker_tasks_succeeded_total",
            "forge_worker_task_runtime_seconds_count",
        )
    }
    assert _wait_for_increase(worker.metrics_url, before, expected) == expected


def test_failed_task_is_counted_and_its_log_lines_name_it(worker: RunningWorker) -> None:
    before = _scrape(worker.metrics_url)
    result = worker.client.send_task("test.fail")
    result.get(timeout=20, propagate=False)
    assert result.state == "FAILURE"

    expected = {
        ("forge_worker_tasks_started_total", "test.fail"): 1,
        ("forge_worker_tasks_failed_total", "test.fail"): 1,
        ("forge_worker_tasks_succeeded_total", "test.fail"): 0,
        ("forge_worker_task_runtime_seconds_count", "test.fail"): 1,
    }
    assert _wait_for_increase(worker.metrics_url, before, expected) == expected

    lines = [json.loads(line) for line in worker.stdout.read_text().splitlines()]
    inside = [line for line in lines if line["msg"] == "about to fail"]
    assert inside == [
        {
            "ts": inside[0]["ts"],
            "level": "INFO",
            "logger": __name__,
            "msg": "about to fail",
            "service": "worker",
            "pid": inside[0]["pid"],
            "task_id": result.id,
            "task_name": "test.fail",
        }
    ]
    written = [line for line in lines if line["msg"] == "written to stdout"]
    assert [(line["logger"], line["task_id"]) for line in written] == [
        ("celery.redirected", result.id)
    ]
    failed = [line for line in lines if line.get("exc_type") == "RuntimeError"]
    assert [(line["task_id"], line["task_name"]) for line in failed] == [(result.id, "test.fail")]


def test_a_task_lost_with_its_process_runs_again(worker: RunningWorker) -> None:
    """acks_late + reject_on_worker_lost: the broker gets the message back and redelivers it."""
    key = f"die-once-{time.monotonic_ns()}"
    result = worker.client.send_task("test.die_once", args=[worker.redis_url, key])
    assert result.get(timeout=60) == 2
    assert int(redis.Redis.from_url(worker.redis_url).get(key) or 0) == 2


def _cli(worker: RunningWorker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _scrape(url: str) -> dict[tuple[str, str], float]:
    """Every sample labelled with a task, by (sample name, task)."""
    # Not imported at the top: the worker imports this module (for its tasks) before it may
    # import prometheus-client (see modules.observability.multiprocess).
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(url)
    response.raise_for_status()
    return {
        (sample.name, sample.labels["task"]): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if "task" in sample.labels and "le" not in sample.labels
    }


def _wait_for_increase(
    url: str, before: dict[tuple[str, str], float], expected: dict[tuple[str, str], int]
) -> dict[tuple[str, str], float]:
    """The increases since `before`, once they reach `expected` (or after 10 s): the signals
    that count a task fire after its result is stored."""
    deadline = time.monotonic() + 10
    while True:
        after = _scrape(url)
        increase = {key: after.get(key, 0) - before.get(key, 0) for key in expected}
        if increase == expected or time.monotonic() > deadline:
            return increase
        time.sleep(0.1)
