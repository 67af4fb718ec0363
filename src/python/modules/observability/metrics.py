"""Prometheus exposition shared by the api and the worker (see multiprocess.py for how several
processes share their samples)."""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from modules.buildinfo import GIT_REVISION, VERSION
from modules.observability.multiprocess import MULTIPROC_ENV

BUILD_INFO = Gauge(
    "forge_build_info",
    "Always 1: the release and git revision of the running service.",
    ["service", "version", "revision"],
    multiprocess_mode="max",  # one sample however many processes set it
)


def set_build_info(service: str) -> None:
    BUILD_INFO.labels(service, VERSION, GIT_REVISION).set(1)


def render_latest(*, process_metrics: bool = False) -> tuple[bytes, str]:
    """The exposition text for a scrape, aggregated across processes when multiprocess.

    `process_metrics` adds the scraping process's `process_*` series (start time, CPU, memory)
    in multiprocess mode, where they are otherwise absent: right for a scrape served by the
    process that lives as long as the service (the worker's main process), not for one served
    by whichever uvicorn worker took the connection.
    """
    if not os.environ.get(MULTIPROC_ENV):
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if process_metrics:
        ProcessCollector(registry=registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST
