"""Prometheus metrics for Celery tasks, kept up to date by Celery's signals.

The metrics are created when this module is imported, so the worker CLI imports it only after
`use_multiprocess_dir()`. Signals fire in different processes: task_received in the main process
(its consumer reads the broker), the others in the pool process running the task (task_failure
also in the main process when a task's process was killed or lost). Multiprocess mode adds up
the samples of all of them.
"""

import time
from collections.abc import Iterable
from typing import Any

from celery import Task, signals
from celery.worker.request import Request
from prometheus_client import Counter, Histogram

RECEIVED = Counter(
    "forge_worker_tasks_received_total", "Tasks this worker took from the broker.", ["task"]
)
STARTED = Counter("forge_worker_tasks_started_total", "Tasks that started running.", ["task"])
SUCCEEDED = Counter("forge_worker_tasks_succeeded_total", "Tasks that returned.", ["task"])
FAILED = Counter("forge_worker_tasks_failed_total", "Tasks that raised or were lost.", ["task"])
RUNTIME = Histogram(
    "forge_worker_task_runtime_seconds",
    "How long tasks ran, whatever their outcome.",
    ["task"],
    # From health checks (milliseconds) to model jobs (minutes, up to the one-hour hard limit).
    buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600),
)


def start_at_zero(task_names: Iterable[str]) -> None:
    """Create every series of these tasks at zero, so that a scrape of a worker that has not
    run them yet shows them (a missing series is not a zero to PromQL's rate())."""
    for name in task_names:
        for metric in (RECEIVED, STARTED, SUCCEEDED, FAILED, RUNTIME):
            metric.labels(name)


# Monotonic start time of each task running in this process, by task id.
_started_at: dict[str, float] = {}


@signals.task_received.connect
def _received(request: Request, **_: Any) -> None:
    RECEIVED.labels(request.task_name).inc()


@signals.task_prerun.connect
def _started(task_id: str, task: Task[Any, Any], **_: Any) -> None:
    _started_at[task_id] = time.monotonic()
    STARTED.labels(task.name).inc()


@signals.task_postrun.connect
def _finished(task_id: str, task: Task[Any, Any], **_: Any) -> None:
    started_at = _started_at.pop(task_id, None)
    if started_at is not None:
        RUNTIME.labels(task.name).observe(time.monotonic() - started_at)


@signals.task_success.connect
def _succeeded(sender: Task[Any, Any], **_: Any) -> None:
    SUCCEEDED.labels(sender.name).inc()


@signals.task_failure.connect
def _failed(sender: Task[Any, Any], **_: Any) -> None:
    FAILED.labels(sender.name).inc()
