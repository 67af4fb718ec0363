"""Milestone M1's acceptance over HTTP: jobs submitted to a real api process, run by a real
Celery worker, their artifacts in an S3 server, with the reconciler running beside them.

The worker runs one job at a time (modules.testing.stack), which is how a test keeps a job
queued: submit it while another one runs.
"""

import hashlib
import io
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
from PIL import Image

from e2e import metrics
from modules.testing.stack import ForgeStack

PROBLEM = "application/problem+json"


def test_a_job_runs_and_its_png_downloads_through_the_presigned_url(
    forge_stack: ForgeStack,
) -> None:
    with forge_stack.client() as client:
        response = client.post(
            "/v1/jobs",
            json={
                "model": "stub-image",
                "input": {"prompt": "a red fox", "width": 96, "height": 64},
            },
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == job["urls"]["self"]
        assert job["status"] == "queued"
        assert job["model"] == "stub-image@2"  # the newest version of the name
        # The model's defaults fill in what the request left out.
        assert job["input"] == {
            "prompt": "a red fox",
            "seed": 0,
            "width": 96,
            "height": 64,
            "step_duration_s": 0,
        }

        done = forge_stack.wait_for_job(client, job["id"])
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 1
        assert done["error"] is None
        assert done["started_at"] <= done["finished_at"]
        assert [(step["name"], step["status"]) for step in done["steps"]] == [
            ("prepare", "succeeded"),
            ("render", "succeeded"),
            ("describe", "succeeded"),
        ]

        artifacts = client.get(done["urls"]["artifacts"]).raise_for_status().json()["data"]
        # The same artifacts as the job's output (each response signs its URLs afresh).
        assert _without_urls(artifacts) == _without_urls(done["output"])
        by_name = {artifact["name"]: artifact for artifact in artifacts}
        assert by_name.keys() == {"image.png", "manifest.json"}
        image = by_name["image.png"]
        assert (image["content_type"], image["step"]) == ("image/png", 1)

        # The presigned URL works without credentials: as a browser or curl would fetch it.
        png = httpx.get(image["url"], timeout=30).raise_for_status().content
        assert hashlib.sha256(png).hexdigest() == image["sha256"]
        assert len(png) == image["size_bytes"]
        assert Image.open(io.BytesIO(png)).size == (96, 64)
        manifest = httpx.get(by_name["manifest.json"]["url"], timeout=30).raise_for_status().json()
        assert manifest["image"]["sha256"] == image["sha256"]

        events = forge_stack.events(client, job["id"])
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        kinds = [event["type"] for event in events]
        assert kinds[0] == "job.queued"
        assert kinds[-1] == "job.succeeded"
        assert kinds.count("job.started") == 1
        assert kinds.count("artifact.stored") == 2
        assert Counter(kinds)["step.succeeded"] == 3
        # A reader that resumes after event N gets exactly the rest.
        resumed = client.get(done["urls"]["events"], params={"after": 3}).json()["data"]
        assert resumed == events[3:]


def test_the_echo_model_stores_its_input_as_output_json(forge_stack: ForgeStack) -> None:
    """The smallest job: one step, one artifact, events in order from queued to succeeded."""
    with forge_stack.client() as client:
        job = forge_stack.submit(client, "echo@1", message="héllo, forge")
        done = forge_stack.wait_for_job(client, job["id"])
        assert (done["status"], done["attempts"]) == ("succeeded", 1), done
        assert [(step["name"], step["status"]) for step in done["steps"]] == [("echo", "succeeded")]
        [output] = done["output"]
        assert (output["name"], output["content_type"]) == ("output.json", "application/json")
        body = httpx.get(output["url"], timeout=30).raise_for_status().content
        assert body == '{"message":"héllo, forge"}'.encode()
        assert hashlib.sha256(body).hexdigest() == output["sha256"]
        assert [event["type"] for event in forge_stack.events(client, job["id"])] == [
            "job.queued",
            "job.started",
            "step.started",
            "artifact.stored",
            "step.succeeded",
            "job.succeeded",
        ]


def test_a_queued_job_is_canceled_at_once_and_a_running_one_once_its_worker_stops(
    forge_stack: ForgeStack,
) -> None:
    assert forge_stack.api is not None
    assert forge_stack.worker is not None
    api, worker = forge_stack.api.base_url, forge_stack.worker.base_url
    before = metrics.samples(api), metrics.samples(worker)
    with forge_stack.client() as client:
        running = forge_stack.submit(client, prompt="slow", step_duration_s=30)
        forge_stack.wait_for_job(client, running["id"], lambda job: job["status"] == "running")
        # The worker runs one job at a time: this one waits.
        queued = forge_stack.submit(client, prompt="never runs")

        canceled = client.post(queued["urls"]["cancel"]).raise_for_status().json()
        assert canceled["status"] == "canceled"
        assert canceled["cancel_requested_at"] is not None
        again = client.post(queued["urls"]["cancel"]).raise_for_status().json()
        assert again == canceled  # idempotent: a final job comes back unchanged

        canceling = client.post(running["urls"]["cancel"]).raise_for_status().json()
        assert canceling["status"] == "canceling"
        stopped = forge_stack.wait_for_job(client, running["id"], timeout_s=30)
        assert stopped["status"] == "canceled", stopped
        assert stopped["attempts"] == 1
        assert stopped["output"] == []  # the stub stores nothing while it waits
        assert stopped["steps"][0]["status"] == "canceled"
        assert {step["status"] for step in stopped["steps"][1:]} <= {"queued", "canceled"}

        # The worker is free again: a later job runs, and the canceled one never started.
        later = forge_stack.submit(client, prompt="after the cancels")
        assert forge_stack.wait_for_job(client, later["id"])["status"] == "succeeded"
        never = client.get(queued["urls"]["self"]).json()
        assert (never["status"], never["attempts"], never["started_at"]) == ("canceled", 0, None)
        kinds = [event["type"] for event in forge_stack.events(client, queued["id"])]
        assert kinds == ["job.queued", "job.canceled"]

    # Each ended job is counted once, by the process that ended it: the api the queued one,
    # the worker the running one.
    canceled_jobs = {"model": "stub-image@1", "status": "canceled"}
    after = metrics.samples(api), metrics.samples(worker)
    grew = [
        metrics.value(now, "forge_jobs_finished_total", canceled_jobs)
        - metrics.value(then, "forge_jobs_finished_total", canceled_jobs)
        for then, now in zip(before, after, strict=True)
    ]
    assert grew == [1, 1]  # api, worker


def test_a_failing_step_fails_the_job_with_its_error(forge_stack: ForgeStack) -> None:
    with forge_stack.client() as client:
        job = forge_stack.submit(client, prompt="doomed", fail_at_step=1)
        failed = forge_stack.wait_for_job(client, job["id"])
        assert failed["status"] == "failed", failed
        # The runner's verdict is final: no second attempt.
        assert (failed["attempts"], failed["max_attempts"]) == (1, 3)
        assert failed["error"] == {
            "type": "step_failed",
            "step": "render",
            "message": "failed at step 1 as requested",
        }
        assert [step["status"] for step in failed["steps"]] == ["succeeded", "failed", "canceled"]
        assert failed["steps"][1]["error"]["message"] == "failed at step 1 as requested"
        assert failed["output"] == []
        events = forge_stack.events(client, job["id"])
        assert events[-1]["type"] == "job.failed"
        assert events[-1]["payload"]["error"] == failed["error"]


def test_an_idempotency_key_replays_the_original_job(forge_stack: ForgeStack) -> None:
    key = f"replay-{uuid.uuid4()}"
    body = {"model": "stub-image@1", "input": {"prompt": "once"}}
    with forge_stack.client() as client:
        first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 202
        assert "idempotent-replayed" not in first.headers

        replay = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
        assert replay.status_code == 200
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.headers["location"] == first.headers["location"]
        assert replay.json()["id"] == first.json()["id"]

        other = {"model": "stub-image@1", "input": {"prompt": "twice"}}
        conflict = client.post("/v1/jobs", json=other, headers={"Idempotency-Key": key})
        assert conflict.status_code == 422
        assert conflict.headers["content-type"] == PROBLEM
        assert "Idempotency-Key" in conflict.json()["detail"]


def test_concurrent_duplicates_create_one_job(forge_stack: ForgeStack) -> None:
    key = f"concurrent-{uuid.uuid4()}"
    body = {"model": "stub-image@1", "input": {"prompt": "exactly one"}}
    duplicates = 20
    ready = threading.Barrier(duplicates)

    def send(client: httpx.Client) -> httpx.Response:
        ready.wait()  # all at once
        return client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})

    # One connection each, so the requests really are concurrent at the api.
    clients = [forge_stack.client() for _ in range(duplicates)]
    try:
        with ThreadPoolExecutor(duplicates) as pool:
            responses = list(pool.map(send, clients))
    finally:
        for client in clients:
            client.close()
    assert sorted(response.status_code for response in responses) == [200] * 19 + [202]
    assert len({response.json()["id"] for response in responses}) == 1
    replayed = [response for response in responses if response.status_code == 200]
    assert all(response.headers["idempotent-replayed"] == "true" for response in replayed)


def test_an_invalid_input_gets_every_error_with_its_pointer(forge_stack: ForgeStack) -> None:
    body = {
        "model": "stub-image@1",
        "input": {"prompt": "", "seed": -1, "width": "wide", "colour": "red"},
    }
    with forge_stack.client() as client:
        response = client.post("/v1/jobs", json=body)
        jobs_after = client.get("/v1/jobs", params={"limit": 100}).json()["data"]
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 422
    pointers = sorted(error["pointer"] for error in problem["errors"])
    # additionalProperties is reported on the object that has the extra property.
    assert pointers == ["/input", "/input/prompt", "/input/seed", "/input/width"]
    assert all(error["msg"] for error in problem["errors"])
    assert not any(job["input"].get("colour") for job in jobs_after)  # nothing was stored


def test_an_unknown_model_is_a_404_problem(forge_stack: ForgeStack) -> None:
    with forge_stack.client() as client:
        for model in ("no-such-model", "stub-image@999"):
            response = client.post("/v1/jobs", json={"model": model, "input": {"prompt": "x"}})
            assert response.status_code == 404, model
            assert response.headers["content-type"] == PROBLEM
            problem = response.json()
            assert (problem["status"], problem["title"]) == (404, "Not Found")
            assert model in problem["detail"]
        assert client.get("/v1/models/no-such-model").status_code == 404
        models = client.get("/v1/models").raise_for_status().json()["data"]
        assert {model["ref"] for model in models} >= {"stub-image@1", "stub-icon@1"}


def test_listing_pages_skip_and_repeat_nothing_while_jobs_arrive(forge_stack: ForgeStack) -> None:
    """Three pages of a model's jobs, newest first, read while other jobs are submitted: every
    job that existed before the first page is on exactly one page, in order."""
    model = "stub-icon@1"
    with forge_stack.client() as client:
        existing = {
            forge_stack.submit(client, model, prompt=f"listed {n}")["id"] for n in range(25)
        }
        stop = threading.Event()
        arrived: list[str] = []

        def submit_more() -> None:
            with forge_stack.client() as other:
                while not stop.is_set():
                    arrived.append(forge_stack.submit(other, model, prompt="arriving")["id"])

        inserter = threading.Thread(target=submit_more)
        inserter.start()
        try:
            pages = []
            url: str | None = f"/v1/jobs?model={model}&limit=10"
            while url is not None:
                page = client.get(url).raise_for_status().json()
                pages.append(page["data"])
                url = page["next"]
                time.sleep(0.2)  # let new jobs arrive between pages
        finally:
            stop.set()
            inserter.join()
        listed = [job["id"] for page in pages for job in page]
        keys = [
            (datetime.fromisoformat(job["created_at"]), job["id"]) for page in pages for job in page
        ]
        # A name without a version: every version of it, nothing else.
        by_name = client.get("/v1/jobs", params={"model": "stub-icon", "limit": 100}).json()
        others = client.get("/v1/jobs", params={"model": "stub-image", "limit": 100}).json()
        # These jobs only had to exist: cancel them, so the worker does not run them meanwhile.
        for job_id in [*existing, *arrived]:
            client.post(f"/v1/jobs/{job_id}/cancel").raise_for_status()

    assert len(pages) >= 3
    assert arrived, "no job arrived while paging"
    assert len(listed) == len(set(listed)), "a job was listed twice"
    assert existing <= set(listed), "a job was skipped"
    assert keys == sorted(
        keys, reverse=True
    )  # newest first across pages (uuids as PostgreSQL orders them)
    assert {job["model"] for page in pages for job in page} == {model}
    assert {job["model"] for job in by_name["data"]} == {model}
    assert by_name["data"]
    assert model not in {job["model"] for job in others["data"]}


def test_metrics_count_jobs_submitted_and_finished(forge_stack: ForgeStack) -> None:
    assert forge_stack.api is not None
    assert forge_stack.worker is not None
    api, worker = forge_stack.api.base_url, forge_stack.worker.base_url
    model = {"model": "stub-image@1"}
    submitted = {**model}
    succeeded = {**model, "status": "succeeded"}
    before = metrics.samples(api), metrics.samples(worker)
    with forge_stack.client() as client:
        job = forge_stack.submit(client, prompt="counted")
        assert forge_stack.wait_for_job(client, job["id"])["status"] == "succeeded"
    after = metrics.samples(api), metrics.samples(worker)

    def grew(which: int, name: str, labels: dict[str, str]) -> float:
        return metrics.value(after[which], name, labels) - metrics.value(
            before[which], name, labels
        )

    assert grew(0, "forge_jobs_submitted_total", submitted) == 1
    assert grew(1, "forge_jobs_finished_total", succeeded) == 1
    assert grew(1, "forge_job_duration_seconds_count", succeeded) == 1
    for step in ("prepare", "render", "describe"):
        assert grew(1, "forge_step_duration_seconds_count", {**model, "step": step}) == 1
    assert any(name == "forge_jobs_in_flight" for name, _, _ in after[1])
    # The reconciler samples the queue depth of every model; nothing is queued once its next
    # pass has counted.
    assert forge_stack.reconciler is not None
    reconciler = forge_stack.reconciler.base_url
    deadline = time.monotonic() + 10
    while metrics.value(metrics.samples(reconciler), "forge_jobs_queued", model) != 0:
        assert time.monotonic() < deadline, "the reconciler still counts a queued job"
        time.sleep(0.2)
    assert any(
        name == "forge_jobs_queued" and labels == {"model": "stub-icon@1"}
        for name, labels, _ in metrics.samples(reconciler)
    )


def _without_urls(artifacts: list[Any]) -> list[Any]:
    return [{**artifact, "url": None, "url_expires_at": None} for artifact in artifacts]
