"""Prometheus helpers shared by the api and the worker.

Both may run several processes (uvicorn workers, Celery's prefork pool), so metrics use
prometheus-client's multiprocess mode whenever PROMETHEUS_MULTIPROC_DIR is set: each process
writes its samples to files in that directory and a scrape adds them up.
"""

import os
import shutil
import tempfile

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess_dir(program: str) -> str:
    """Point prometheus-client at a fresh, private sample directory for this process tree.

    Must run before any metric is created: metrics keep the storage chosen when they are
    instantiated. Child processes inherit the variable. Returns the directory, which the
    caller removes with `remove_multiprocess_dir` at exit.
    """
    directory = tempfile.mkdtemp(prefix=f"{program}-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    # prometheus-client reads the variable once, when it is imported (usually before this
    # runs): choose the storage for metrics created from now on again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


def remove_multiprocess_dir(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def mark_process_dead(pid: int) -> None:
    """Drop a finished child's live gauges (its counters stay, as they should)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def render_latest() -> tuple[bytes, str]:
    """The exposition text for a scrape, aggregated across processes when multiprocess."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
