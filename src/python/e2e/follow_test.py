"""Following jobs over HTTP against the real api process and Celery worker: the event stream
(cut mid-job and resumed with Last-Event-ID, heartbeats, its end, 404) and `Prefer: wait`."""

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from modules.client.sync import ForgeClient
from modules.contract.v1 import EventOut
from modules.testing.proxy import FaultyProxy, faulty_proxy
from modules.testing.stack import ForgeStack

SSE = {"Accept": "text/event-stream"}
HEARTBEAT_S = 0.5
# How soon after a job ends a held request answers: the notification's way plus slack for
# two busy cores.
PROMPT_S = 2.0


@pytest.fixture(scope="module")
def stack(forge_stack: ForgeStack) -> ForgeStack:
    """The stack with an api that sends heartbeats every HEARTBEAT_S."""
    assert forge_stack.api is not None
    forge_stack.api.stop()
    forge_stack.env["FORGE_EVENTS_HEARTBEAT_S"] = str(HEARTBEAT_S)
    forge_stack.start_api()
    return forge_stack


def sse_items(response: httpx.Response) -> Iterator[EventOut | str]:
    """What a stream sends, as it comes: each event, and each comment's text."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield line[1:].strip()
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            event = EventOut.model_validate_json(fields["data"])
            assert (fields["id"], fields["event"]) == (str(event.seq), event.type)
            yield event
            fields = {}


def events_only(response: httpx.Response) -> list[EventOut]:
    return [item for item in sse_items(response) if isinstance(item, EventOut)]


def test_a_stream_cut_mid_job_resumes_after_last_event_id_with_every_event_once(
    stack: ForgeStack,
) -> None:
    assert stack.api is not None
    with stack.client() as client, faulty_proxy("127.0.0.1", stack.api.port) as proxy:
        job = stack.submit(client, prompt="cut", width=64, height=64, step_duration_s=0.5)
        url = f"/v1/jobs/{job['id']}/events"  # relative: through the proxy, not to the api
        before: list[EventOut] = []
        with pytest.raises(httpx.TransportError):
            read_and_cut_mid_job(
                proxy, url, before, {"Authorization": client.headers["Authorization"]}
            )
        assert before[-1].type not in ("job.succeeded", "job.failed", "job.canceled")

        headers = {**SSE, "Last-Event-ID": str(before[-1].seq)}
        with client.stream("GET", url, headers=headers) as response:
            after = events_only(response)  # until the stream ends
        paged = stack.events(client, job["id"])

    streamed = before + after
    assert after, "nothing came after the cut"
    assert [event.seq for event in streamed] == list(range(1, len(streamed) + 1))
    assert streamed[-1].type == "job.succeeded"
    # The same events as the JSON pages hold.
    assert [event.model_dump(mode="json") for event in streamed] == paged


def read_and_cut_mid_job(
    proxy: FaultyProxy, url: str, into: list[EventOut], auth: dict[str, str]
) -> None:
    """Reads the stream through the proxy into `into`, cutting the connection at the first
    progress report; raises what the cut makes of the read."""
    cut = False
    with (
        httpx.Client(
            base_url=proxy.url,
            timeout=30,
            headers=auth,
        ) as client,
        client.stream("GET", url, headers=SSE) as response,
    ):
        for item in sse_items(response):
            if isinstance(item, EventOut):
                into.append(item)
                # Events already on their way may still come after the cut.
                if item.type == "step.progress" and not cut:
                    cut = proxy.sever() == 1


def test_a_quiet_stream_has_heartbeats_and_ends_with_the_terminal_event(
    stack: ForgeStack,
) -> None:
    with stack.client() as client:
        job = stack.submit(client, prompt="slow", step_duration_s=30)
        stack.wait_for_job(client, job["id"], lambda job: job["status"] == "running")
        heartbeats = 0
        received: list[EventOut] = []
        with client.stream("GET", job["urls"]["events"], headers=SSE) as response:
            for item in sse_items(response):
                if isinstance(item, EventOut):
                    received.append(item)
                elif item == "heartbeat":
                    heartbeats += 1
                    if heartbeats == 2:
                        client.post(job["urls"]["cancel"]).raise_for_status()
            # The loop ended: the server closed the stream after the terminal event.
    assert heartbeats >= 2
    assert received[-1].type == "job.canceled"
    assert [event.seq for event in received] == list(range(1, len(received) + 1))


def test_the_client_follows_a_job_through_heartbeats_that_come_after_its_events(
    stack: ForgeStack,
) -> None:
    # A heartbeat after an event reaches the client's SSE parser as an event with the last id
    # and no data; it must be skipped, not taken for a malformed event.
    with ForgeClient(stack.api_url, api_key=stack.api_key) as forge:
        input = {"prompt": "quiet steps", "width": 64, "height": 64, "step_duration_s": 1.5}
        job = forge.submit("stub-image", input)
        received = list(forge.stream_events(job.id))
    assert received[-1].type == "job.succeeded"
    assert [event.seq for event in received] == list(range(1, len(received) + 1))


def test_a_stream_of_an_unknown_job_is_a_404_problem(stack: ForgeStack) -> None:
    with stack.client() as client:
        response = client.get("/v1/jobs/00000000-0000-4000-8000-000000000000/events", headers=SSE)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "No job" in response.json()["detail"]


def test_prefer_wait_answers_as_soon_as_the_job_ends(stack: ForgeStack) -> None:
    with stack.client() as client:
        response = client.post(
            "/v1/jobs",
            json={"model": "stub-image", "input": {"prompt": "quick", "width": 64, "height": 64}},
            headers={"Prefer": "wait=30"},
        )
        answered = time.time()
    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "wait=30"
    job = response.json()
    assert job["status"] == "succeeded"
    assert answered - _timestamp(job["finished_at"]) < PROMPT_S


def test_prefer_wait_answers_after_n_seconds_with_the_job_as_it_is(stack: ForgeStack) -> None:
    with stack.client() as client:
        started = time.monotonic()
        response = client.post(
            "/v1/jobs",
            json={"model": "stub-image", "input": {"prompt": "slow", "step_duration_s": 30}},
            headers={"Prefer": "wait=2"},
        )
        elapsed = time.monotonic() - started
        job = response.json()
        assert response.headers["preference-applied"] == "wait=2"
        assert 2 <= elapsed < 2 + PROMPT_S
        assert job["status"] in ("queued", "running")

        # A GET held the same way answers once the canceled job has stopped.
        stack.wait_for_job(client, job["id"], lambda job: job["status"] == "running")
        client.post(job["urls"]["cancel"]).raise_for_status()
        held = client.get(job["urls"]["self"], headers={"Prefer": "wait=30"}).json()
        answered = time.time()
    assert held["status"] == "canceled"
    assert answered - _timestamp(held["finished_at"]) < PROMPT_S


def _timestamp(value: Any) -> float:
    return datetime.fromisoformat(value).timestamp()
