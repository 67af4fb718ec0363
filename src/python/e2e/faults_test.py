"""No job is lost or run twice when Redis or a worker dies: PostgreSQL is the truth, the
reconciler makes up lost messages and takes back jobs whose worker's lease ran out."""

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from e2e import metrics
from modules.jobs.execution import SHUT_DOWN
from modules.testing.stack import RECONCILE_INTERVAL_S, SHUTDOWN_GRACE_S, ForgeStack


def test_a_job_submitted_while_redis_is_down_runs_once_redis_is_back(
    forge_stack: ForgeStack,
) -> None:
    with forge_stack.client() as client:
        forge_stack.redis.kill()
        try:
            job = forge_stack.submit(client, prompt="submitted without a broker")
            # The api sends no run messages (ADR 019): it stays in service.
            assert client.get("/readyz").status_code == 200
            # Several reconciler passes: none can send its message, nobody runs it.
            time.sleep(4 * RECONCILE_INTERVAL_S)
            assert client.get(job["urls"]["self"]).json()["status"] == "queued"
        finally:
            # Empty, as a Redis that lost its data: the submission's message is gone for good.
            forge_stack.redis.start()
        done = forge_stack.wait_for_job(client, job["id"], timeout_s=90)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1


def test_a_job_whose_worker_is_killed_finishes_once_without_rerunning_finished_steps(
    forge_stack: ForgeStack,
) -> None:
    with forge_stack.client() as client:
        job = forge_stack.submit(client, prompt="survives its worker", step_duration_s=2)
        # Killed in the last step, after the image was stored.
        forge_stack.wait_for_job(
            client,
            job["id"],
            lambda job: job["steps"] and job["steps"][2]["status"] == "running",
            timeout_s=60,
        )
        forge_stack.kill_worker()
        forge_stack.start_worker()  # as an orchestrator replaces a dead worker
        done = forge_stack.wait_for_job(client, job["id"], timeout_s=90)
        events = forge_stack.events(client, job["id"])

    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    # The steps that had succeeded ran once; the interrupted one ran again.
    assert [(step["name"], step["attempts"]) for step in done["steps"]] == [
        ("prepare", 1),
        ("render", 1),
        ("describe", 2),
    ]
    kinds = Counter(event["type"] for event in events)
    assert kinds["job.started"] == 2
    assert kinds["job.requeued"] == 1
    assert kinds["job.succeeded"] == 1
    started = Counter(
        event["payload"]["step"] for event in events if event["type"] == "step.started"
    )
    assert started == {"prepare": 1, "render": 1, "describe": 2}
    (requeued,) = (event for event in events if event["type"] == "job.requeued")
    assert "lease expired" in requeued["payload"]["reason"]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))

    # One row and one object per artifact, however often its step ran.
    assert sorted(artifact["name"] for artifact in done["output"]) == ["image.png", "manifest.json"]
    assert forge_stack.stored_keys(f"jobs/{job['id']}/") == [
        f"jobs/{job['id']}/1/image.png",
        f"jobs/{job['id']}/2/manifest.json",
    ]


def test_a_job_that_keeps_killing_its_worker_fails_after_its_attempts(
    forge_stack: ForgeStack,
) -> None:
    assert forge_stack.reconciler is not None
    reconciler = forge_stack.reconciler.base_url
    failed_jobs = {"model": "stub-image@1", "status": "failed"}
    counted_before = metrics.value(
        metrics.samples(reconciler), "forge_jobs_finished_total", failed_jobs
    )
    with forge_stack.client() as client:
        job = forge_stack.submit(client, prompt="kills its worker", step_duration_s=5)
        for attempt in range(1, job["max_attempts"] + 1):
            forge_stack.wait_for_job(client, job["id"], _running(attempt), timeout_s=60)
            forge_stack.kill_worker()
            forge_stack.start_worker()
        failed = forge_stack.wait_for_job(client, job["id"], timeout_s=60)
        events = forge_stack.events(client, job["id"])

    assert failed["status"] == "failed", failed
    assert failed["attempts"] == failed["max_attempts"] == 3
    assert failed["error"]["type"] == "attempts_exhausted"
    assert "gave up after 3 attempts" in failed["error"]["message"]
    kinds = Counter(event["type"] for event in events)
    assert (kinds["job.started"], kinds["job.requeued"], kinds["job.failed"]) == (3, 2, 1)
    assert {step["status"] for step in failed["steps"]} == {"canceled"}
    # The reconciler ended it, and counted it.
    counted = metrics.value(metrics.samples(reconciler), "forge_jobs_finished_total", failed_jobs)
    assert counted - counted_before == 1


def test_a_worker_stopped_with_sigterm_gives_its_job_back_after_the_grace_period(
    forge_stack: ForgeStack,
) -> None:
    """Warm shutdown: the job may run on for the grace period, then it is queued again at once
    (not after its lease), uses up no attempt, and another worker finishes it."""
    with forge_stack.client() as client:
        job = forge_stack.submit(client, prompt="outlives the grace period", step_duration_s=3)
        forge_stack.wait_for_job(client, job["id"], _running(1), timeout_s=60)
        started = time.monotonic()
        forge_stack.stop_worker()  # SIGTERM; the worker exits 0
        stopped_after_s = time.monotonic() - started
        given_back = client.get(job["urls"]["self"]).json()
        forge_stack.start_worker()
        done = forge_stack.wait_for_job(client, job["id"], timeout_s=90)
        events = forge_stack.events(client, job["id"])

    assert SHUTDOWN_GRACE_S <= stopped_after_s < SHUTDOWN_GRACE_S + 15
    assert given_back["status"] == "queued", given_back
    assert done["status"] == "succeeded", done
    assert (done["attempts"], done["max_attempts"]) == (2, 4)
    (requeued,) = (event for event in events if event["type"] == "job.requeued")
    assert requeued["payload"]["reason"] == SHUT_DOWN
    assert "step.canceled" in {event["type"] for event in events}


def _running(attempt: int) -> Callable[[Any], bool]:
    return lambda job: (job["status"], job["attempts"]) == ("running", attempt)
