"""What both clients share, on values (the clients themselves are tested against a real api in
src/python/e2e/client_test.py)."""

import hashlib
from datetime import UTC, datetime

import httpx
import pytest
from httpx_sse import ServerSentEvent

from modules.client import wire
from modules.client.errors import (
    ApiError,
    ApiUnreachable,
    ChecksumMismatch,
    ForgeError,
    InvalidRequest,
)
from modules.contract.problem import MEDIA_TYPE
from modules.contract.v1 import ArtifactOut, EventOut, JobList


def test_a_problem_body_is_one_line_with_every_field_error() -> None:
    problem = {
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "The input does not match the model's input_schema.",
        "request_id": "abc123",
        "errors": [
            {
                "loc": ["body", "input", "seed"],
                "msg": "-1 is less than 0",
                "type": "x",
                "pointer": "/input/seed",
            },
            {"loc": ["query", "limit"], "msg": "too big", "type": "y"},
        ],
    }
    response = httpx.Response(422, json=problem, headers={"content-type": MEDIA_TYPE})
    error = ApiError.from_response(response)
    assert error.status == 422
    assert error.problem is not None
    assert str(error) == (
        "422 Unprocessable Content: The input does not match the model's input_schema. "
        "(/input/seed: -1 is less than 0; query.limit: too big) [request abc123]"
    )


def test_an_error_without_a_problem_body_is_its_status_line() -> None:
    error = ApiError.from_response(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert (str(error), error.problem) == ("502 Bad Gateway", None)


def test_parse_returns_the_model_or_raises_the_problem() -> None:
    page: dict[str, object] = {"data": [], "next": None}
    assert wire.parse(httpx.Response(200, json=page), JobList).data == []
    with pytest.raises(ApiError, match="not a JobList"):
        wire.parse(httpx.Response(200, json={"nope": 1}), JobList)


def test_a_job_that_breaks_the_contract_is_refused_before_sending() -> None:
    with pytest.raises(InvalidRequest, match="priority: Input should be less than or equal to 9"):
        wire.submit_body("stub-image", {"prompt": "x"}, priority=12)
    with pytest.raises(InvalidRequest, match="wait must be 1 to 60"):
        wire.wait_headers(61)
    assert wire.wait_headers(5) == {"Prefer": "wait=5"}


def sse(seq: int) -> ServerSentEvent:
    event = EventOut(seq=seq, type="step.log", payload={}, created_at=datetime.now(UTC))
    return ServerSentEvent(event="step.log", data=event.model_dump_json(), id=str(seq))


def test_the_cursor_drops_events_it_delivered_and_resumes_after_the_last() -> None:
    cursor = wire.Cursor(after=0)
    assert cursor.headers() == {}
    delivered = [cursor.accept(sse(seq)) for seq in (1, 2, 1, 2, 3)]
    assert [event.seq if event else None for event in delivered] == [1, 2, None, None, 3]
    assert cursor.headers() == {"Last-Event-ID": "3"}
    assert wire.Cursor(after=7).headers() == {"Last-Event-ID": "7"}


def test_reconnects_back_off_give_up_and_start_over_after_progress() -> None:
    reconnects = wire.Reconnects(attempts=3, backoff_s=0.5)
    dropped = ApiUnreachable("dropped")
    assert [reconnects.after(dropped) for _ in range(3)] == [0.5, 1.0, 2.0]
    with pytest.raises(ApiUnreachable):
        reconnects.after(dropped)
    reconnects.progressed()
    assert reconnects.after(ApiError(503, None, "restarting")) == 0.5


@pytest.mark.parametrize(
    "error", [ApiError(404, None, "no such job"), ApiError(500, None, "bug"), ForgeError("other")]
)
def test_errors_that_will_not_pass_are_raised_at_once(error: ForgeError) -> None:
    with pytest.raises(type(error)):
        wire.Reconnects(attempts=5, backoff_s=0.5).after(error)


def artifact(name: str, step: int = 0, data: bytes = b"png") -> ArtifactOut:
    return ArtifactOut(
        name=name,
        step=step,
        content_type="image/png",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        url="http://s3.test/x",
        url_expires_at=datetime.now(UTC),
    )


def test_filenames_stay_in_the_directory_and_apart() -> None:
    artifacts = [artifact("image.png", 1), artifact("../../etc/passwd", 1), artifact("log", 0)]
    assert wire.filenames(artifacts) == ["image.png", "passwd", "log"]
    assert wire.filenames([artifact("a.txt", 0), artifact("a.txt", 2)]) == ["0-a.txt", "2-a.txt"]
    with pytest.raises(ApiError, match="named an artifact '..'"):
        wire.filenames([artifact("..")])


def test_a_checksum_mismatch_names_both_digests() -> None:
    checksum = wire.Checksum(artifact("image.png", data=b"the real bytes"))
    checksum.update(b"other bytes")
    with pytest.raises(ChecksumMismatch) as raised:
        checksum.verify()
    assert raised.value.expected == hashlib.sha256(b"the real bytes").hexdigest()
    assert raised.value.actual == hashlib.sha256(b"other bytes").hexdigest()
    matching = wire.Checksum(artifact("image.png", data=b"the real bytes"))
    matching.update(b"the real ")
    matching.update(b"bytes")
    matching.verify()


def test_the_api_key_goes_to_the_api_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str | None] = {}

    def record(request: httpx.Request) -> httpx.Response:
        seen[str(request.url)] = request.headers.get("authorization")
        return httpx.Response(200)

    monkeypatch.setenv(wire.API_KEY_VARIABLE, "fk_fromenvi_secret")
    auth = wire.api_key_auth(None, "http://api.test:8000")
    with httpx.Client(auth=auth, transport=httpx.MockTransport(record)) as client:
        client.get("http://api.test:8000/v1/jobs")
        client.get("http://minio.test:9000/forge-artifacts/jobs/x/0/image.png?X-Amz-Signature=s")
        client.get("http://api.test:9000/v1/jobs")  # another port: another origin
    assert seen == {
        "http://api.test:8000/v1/jobs": "Bearer fk_fromenvi_secret",
        "http://minio.test:9000/forge-artifacts/jobs/x/0/image.png?X-Amz-Signature=s": None,
        "http://api.test:9000/v1/jobs": None,
    }
    assert wire.api_key_auth("fk_givennn_secret", "http://api.test") is not None
    monkeypatch.delenv(wire.API_KEY_VARIABLE)
    assert wire.api_key_auth(None, "http://api.test") is None
