"""Prometheus metrics of jobs, recorded by the processes that move jobs along: the api counts
submissions, the worker's pool processes time jobs and steps, whichever process ends a job
counts it, and the reconciler sets the queue depths it samples.

The metrics are created when this module is imported, so a multi-process entry point imports it
only after `use_multiprocess_dir()` (see multiprocess.py). `model` labels are model references
(`name@version`): a handful per deployment, never a job id.
"""

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager

from prometheus_client import Counter, Gauge, Histogram

from modules.persistence.statuses import FINAL_JOB_STATUSES, JobStatus

# From a stub step (a fraction of a second) to a model job (up to the worker's one-hour limit).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)

SUBMITTED = Counter("forge_jobs_submitted_total", "Jobs accepted and queued.", ["model"])
FINISHED = Counter(
    "forge_jobs_finished_total", "Jobs that reached a final status.", ["model", "status"]
)
JOB_DURATION = Histogram(
    "forge_job_duration_seconds",
    "From a job's submission to its final status (time queued included).",
    ["model", "status"],
    buckets=DURATION_BUCKETS,
)
STEP_DURATION = Histogram(
    "forge_step_duration_seconds",
    "How long a step ran, from its start to its end, whatever the outcome.",
    ["model", "step"],
    buckets=DURATION_BUCKETS,
)
IN_FLIGHT = Gauge(
    "forge_jobs_in_flight",
    "Jobs the worker is running now.",
    ["worker"],
    # Adds up the worker's pool processes; a process marked dead no longer counts.
    multiprocess_mode="livesum",
)
QUEUED = Gauge(
    "forge_jobs_queued",
    "Jobs waiting for a worker, as the reconciler last counted them.",
    ["model"],
    multiprocess_mode="livemostrecent",  # one process sets it; its last sample is the answer
)

# Models this process has given a queue depth: a later count that omits one means zero.
_queued_models: set[str] = set()


def start_at_zero(models: Iterable[str]) -> None:
    """Create the counters' series of these models at zero, so that a scrape shows them before
    their first job (a missing series is not a zero to PromQL's rate())."""
    for model in models:
        SUBMITTED.labels(model)
        for status in FINAL_JOB_STATUSES:
            FINISHED.labels(model, status)


def observe_job_submitted(model: str) -> None:
    SUBMITTED.labels(model).inc()


def observe_job_finished(model: str, status: JobStatus, seconds: float) -> None:
    """A job reached `status` (succeeded, failed or canceled) `seconds` after its submission."""
    if status not in FINAL_JOB_STATUSES:
        raise ValueError(f"{status} is not a final job status")
    FINISHED.labels(model, status).inc()
    JOB_DURATION.labels(model, status).observe(seconds)


def observe_step_finished(model: str, step: str, seconds: float) -> None:
    """A step of a `model` job ended (succeeded, failed or canceled) after running `seconds`."""
    STEP_DURATION.labels(model, step).observe(seconds)


def job_in_flight(worker: str) -> AbstractContextManager[None]:
    """Counts one job as running on `worker` (its node name) while the block runs."""
    return IN_FLIGHT.labels(worker).track_inprogress()


def set_jobs_queued(counts: Mapping[str, int]) -> None:
    """Set the queue depth of each model counted; models counted before and absent now have
    no queued job left."""
    for model in _queued_models.difference(counts):
        QUEUED.labels(model).set(0)
    for model, count in counts.items():
        QUEUED.labels(model).set(count)
    _queued_models.update(counts)
