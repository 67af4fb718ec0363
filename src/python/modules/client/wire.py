"""What the sync and the async client share: requests, answers, resuming a stream, verifying a
download. No I/O here; each client does its own."""

import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import httpx
from httpx_sse import ServerSentEvent
from pydantic import BaseModel, ValidationError

from modules.buildinfo import VERSION
from modules.client.errors import (
    ApiError,
    ApiUnreachable,
    ChecksumMismatch,
    ForgeError,
    InvalidRequest,
)
from modules.contract.v1 import ArtifactOut, EventOut, JobCreate
from modules.persistence.statuses import JobStatus

USER_AGENT = f"forge-client/{VERSION}"
TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
# The last event of a job that ended.
TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.canceled"})
# Answers that say "try again": a proxy without an upstream, an api restarting.
RETRYABLE_STATUSES = frozenset({502, 503, 504})
# `Prefer: wait=N` is honoured up to this many seconds.
MAX_WAIT_S = 60
# Where a client finds its API key when it is given none.
API_KEY_VARIABLE = "FORGE_API_KEY"


class ApiKeyAuth(httpx.Auth):
    """`Authorization: Bearer <key>` on requests to the api only: a presigned artifact URL
    points at the object store, which must never see the key."""

    def __init__(self, key: str, base_url: str) -> None:
        self._header = f"Bearer {key}"
        self._origin = _origin(httpx.URL(base_url))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if _origin(request.url) == self._origin:
            request.headers["Authorization"] = self._header
        yield request


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def api_key_auth(key: str | None, base_url: str) -> ApiKeyAuth | None:
    """The key given, else $FORGE_API_KEY's; None when neither is set."""
    key = key or os.environ.get(API_KEY_VARIABLE)
    return ApiKeyAuth(key, base_url) if key else None


def parse[M: BaseModel](response: httpx.Response, model: type[M]) -> M:
    """The answer's body as `model`; ApiError for an error status."""
    if response.is_error:
        raise ApiError.from_response(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        raise ApiError(
            response.status_code, None, f"the API's answer is not a {model.__name__}: {error}"
        ) from None


def unreachable(error: httpx.TransportError) -> ApiUnreachable:
    try:
        url = error.request.url
        where = f"{url.scheme}://{url.netloc.decode()}"
    except RuntimeError:  # httpx names the request only of errors raised while sending it
        where = "the API"
    return ApiUnreachable(f"cannot reach {where}: {str(error) or type(error).__name__}")


def download_failed(artifact: ArtifactOut, response: httpx.Response) -> ApiError:
    """The object store's error (an expired URL, say): its bodies are no problem details."""
    return ApiError(
        response.status_code,
        None,
        f"downloading {artifact.name}: {response.status_code} {response.reason_phrase}",
    )


def job_path(job_id: uuid.UUID | str, *rest: str) -> str:
    return "/".join(("/v1/jobs", str(job_id), *rest))


def submit_body(model: str, input: dict[str, Any] | None, priority: int) -> dict[str, Any]:
    try:
        body = JobCreate.model_validate(
            {"model": model, "input": input or {}, "priority": priority}
        )
    except ValidationError as error:
        raise InvalidRequest.from_validation("job", error) from None
    return body.model_dump(mode="json")


def wait_headers(wait: int | None) -> dict[str, str]:
    if wait is None:
        return {}
    if not 1 <= wait <= MAX_WAIT_S:
        raise InvalidRequest(f"wait must be 1 to {MAX_WAIT_S} seconds, not {wait}")
    return {"Prefer": f"wait={wait}"}


def wait_timeout(timeout: httpx.Timeout, wait: int | None) -> httpx.Timeout:
    """A held request's timeout: the wait on top of the usual read timeout."""
    if wait is None or timeout.read is None:
        return timeout
    return httpx.Timeout(
        connect=timeout.connect, read=timeout.read + wait, write=timeout.write, pool=timeout.pool
    )


class Cursor:
    """Where a job's event stream stands: the last seq delivered. Resuming asks for what is
    after it; an event at or below it (a server resending after a reconnect) is dropped."""

    def __init__(self, after: int) -> None:
        self.last = after

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": str(self.last)} if self.last else {}

    def accept(self, sse: ServerSentEvent) -> EventOut | None:
        """The event to deliver, or None for one already delivered or for no event at all: a
        heartbeat comment after an event reaches here with the last id and no data, which the
        SSE standard says is not dispatched."""
        if not sse.data:
            return None
        try:
            event = EventOut.model_validate_json(sse.data)
        except ValidationError as error:
            raise ApiError(200, None, f"the event stream sent a malformed event: {error}") from None
        if event.seq <= self.last:
            return None
        self.last = event.seq
        return event


class Reconnects:
    """How a stream retries: after a failure that may pass (no connection, a dropped one, a
    502/503/504 answer), wait and reconnect, doubling the wait from `backoff_s` up to 8 s; give
    up after `attempts` failures in a row (an event delivered in between resets the count)."""

    MAX_BACKOFF_S = 8.0

    def __init__(self, attempts: int, backoff_s: float) -> None:
        self._attempts, self._backoff_s = attempts, backoff_s
        self._failures = 0

    def progressed(self) -> None:
        self._failures = 0

    def after(self, error: ForgeError) -> float:
        """Seconds to wait before reconnecting after `error`; raises it when it will not pass
        or the attempts are used up."""
        retryable = isinstance(error, ApiUnreachable) or (
            isinstance(error, ApiError) and error.status in RETRYABLE_STATUSES
        )
        self._failures += 1
        if not retryable or self._failures > self._attempts:
            raise error
        return float(min(self._backoff_s * 2 ** (self._failures - 1), self.MAX_BACKOFF_S))


def filenames(artifacts: Sequence[ArtifactOut]) -> list[str]:
    """Where each artifact goes in the download directory: its name, prefixed with its step's
    position where steps share a name. Only the last path component: a name never escapes the
    directory."""
    names = [PurePath(artifact.name).name for artifact in artifacts]
    for name in names:
        if name in ("", ".", ".."):
            raise ApiError(200, None, f"the API named an artifact {name!r}")
    repeated = {name for name, count in Counter(names).items() if count > 1}
    return [
        f"{artifact.step}-{name}" if name in repeated else name
        for artifact, name in zip(artifacts, names, strict=True)
    ]


@dataclass(frozen=True)
class Download:
    artifact: ArtifactOut
    path: Path  # verified: its SHA-256 is the artifact's


class Checksum:
    """The SHA-256 of a download, checked against the artifact's record."""

    def __init__(self, artifact: ArtifactOut) -> None:
        self._artifact = artifact
        self._hash = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def verify(self) -> None:
        actual = self._hash.hexdigest()
        if actual != self._artifact.sha256:
            raise ChecksumMismatch(self._artifact.name, self._artifact.sha256, actual)
