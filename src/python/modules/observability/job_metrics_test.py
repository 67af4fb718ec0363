import subprocess
import sys
import uuid

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modules.observability.job_metrics import (
    job_in_flight,
    observe_job_finished,
    observe_job_submitted,
    observe_step_finished,
    set_jobs_queued,
    start_at_zero,
)
from modules.persistence.statuses import JobStatus
from modules.testing.processes import python_subprocess_env

BUCKETS = [
    "0.1",
    "0.25",
    "0.5",
    "1.0",
    "2.5",
    "5.0",
    "10.0",
    "30.0",
    "60.0",
    "120.0",
    "300.0",
    "600.0",
    "1200.0",
    "1800.0",
    "3600.0",
    "+Inf",
]


def samples(name: str, **labels: str) -> list[Sample]:
    """The scraped samples named `name` whose labels include `labels`."""
    text = generate_latest(REGISTRY).decode()
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def value(name: str, **labels: str) -> float:
    (sample,) = samples(name, **labels)
    return sample.value


@pytest.fixture()
def model() -> str:
    """A model of this test alone: metrics are process-wide."""
    return f"test-{uuid.uuid4().hex[:8]}@1"


def test_counters_start_at_zero_and_count_submissions_and_outcomes(model: str) -> None:
    start_at_zero([model])
    assert value("forge_jobs_submitted_total", model=model) == 0
    assert {
        s.labels["status"]: s.value for s in samples("forge_jobs_finished_total", model=model)
    } == {
        "succeeded": 0,
        "failed": 0,
        "canceled": 0,
    }

    observe_job_submitted(model)
    observe_job_submitted(model)
    observe_job_finished(model, JobStatus.SUCCEEDED, 12.5)
    observe_job_finished(model, JobStatus.CANCELED, 0.2)

    assert value("forge_jobs_submitted_total", model=model) == 2
    assert value("forge_jobs_finished_total", model=model, status="succeeded") == 1
    assert value("forge_jobs_finished_total", model=model, status="canceled") == 1
    assert value("forge_jobs_finished_total", model=model, status="failed") == 0


def test_job_duration_is_a_histogram_by_model_and_status_up_to_an_hour(model: str) -> None:
    observe_job_finished(model, JobStatus.FAILED, 42)
    buckets = samples("forge_job_duration_seconds_bucket", model=model, status="failed")
    assert [bucket.labels["le"] for bucket in buckets] == BUCKETS
    assert {bucket.labels["le"]: bucket.value for bucket in buckets}["30.0"] == 0
    assert {bucket.labels["le"]: bucket.value for bucket in buckets}["60.0"] == 1
    assert value("forge_job_duration_seconds_sum", model=model, status="failed") == 42
    assert value("forge_job_duration_seconds_count", model=model, status="failed") == 1


def test_step_duration_is_a_histogram_by_model_and_step(model: str) -> None:
    observe_step_finished(model, "render", 0.3)
    observe_step_finished(model, "render", 2000)
    buckets = {
        bucket.labels["le"]: bucket.value
        for bucket in samples("forge_step_duration_seconds_bucket", model=model, step="render")
    }
    assert list(buckets) == BUCKETS
    assert (buckets["0.25"], buckets["0.5"], buckets["1800.0"], buckets["3600.0"]) == (0, 1, 1, 2)
    assert samples("forge_step_duration_seconds_count", model=model, step="prepare") == []


def test_only_final_statuses_finish_a_job(model: str) -> None:
    with pytest.raises(ValueError, match="running is not a final job status"):
        observe_job_finished(model, JobStatus.RUNNING, 1)
    assert samples("forge_jobs_finished_total", model=model, status="running") == []


def test_a_job_is_in_flight_while_it_runs_even_when_it_raises() -> None:
    worker = f"celery@{uuid.uuid4().hex[:8]}"
    with job_in_flight(worker):
        with job_in_flight(worker):
            assert value("forge_jobs_in_flight", worker=worker) == 2
        with pytest.raises(RuntimeError), job_in_flight(worker):
            raise RuntimeError("the runner broke")
        assert value("forge_jobs_in_flight", worker=worker) == 1
    assert value("forge_jobs_in_flight", worker=worker) == 0


def test_queue_depth_is_the_last_count_and_a_model_left_out_is_zero(model: str) -> None:
    other = f"{model}-other"
    set_jobs_queued({model: 3, other: 1})
    assert (value("forge_jobs_queued", model=model), value("forge_jobs_queued", model=other)) == (
        3,
        1,
    )
    set_jobs_queued({model: 2})
    assert (value("forge_jobs_queued", model=model), value("forge_jobs_queued", model=other)) == (
        2,
        0,
    )


# A pool process that dies mid-job, a worker's other process running one, the reconciler's
# queue depth set in two processes: what one scrape of the shared files shows.
MULTIPROCESS = """
import os
from modules.observability.multiprocess import (
    mark_process_dead, remove_multiprocess_dir, use_multiprocess_dir,
)
directory = use_multiprocess_dir("job-metrics-test")
try:
    from modules.observability import job_metrics
    from modules.observability.metrics import render_latest

    def scraped(prefix):
        lines = render_latest()[0].decode().splitlines()
        return [line.split()[-1] for line in lines if line.startswith(prefix)]

    child = os.fork()
    if child == 0:
        job_metrics.set_jobs_queued({"m@1": 5})
        with job_metrics.job_in_flight("w"):
            os._exit(0)  # killed mid-job: the block never ends
    os.waitpid(child, 0)
    job_metrics.set_jobs_queued({"m@1": 2})
    with job_metrics.job_in_flight("w"):
        print(scraped('forge_jobs_in_flight{worker="w"}'))
        mark_process_dead(child)
        print(scraped('forge_jobs_in_flight{worker="w"}'))
    print(scraped('forge_jobs_queued{model="m@1"}'))
finally:
    remove_multiprocess_dir(directory)
"""


def test_in_flight_adds_up_live_processes_and_queued_is_the_latest_sample() -> None:
    result = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS],
        env=python_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['2.0']", "['1.0']", "['2.0']"]
