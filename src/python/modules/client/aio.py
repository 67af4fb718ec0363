"""The asyncio client (httpx.AsyncClient), twin of `sync.ForgeClient`."""

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_sse import aconnect_sse

from modules.client import wire
from modules.client.errors import ApiError, ApiUnreachable, ForgeError
from modules.contract.v1 import (
    ArtifactList,
    ArtifactOut,
    EventOut,
    EventPage,
    JobList,
    JobOut,
    ModelList,
    ModelOut,
)
from modules.persistence.statuses import JobStatus

# Called before each reconnect of an event stream: the last seq delivered, what went wrong.
type OnReconnect = Callable[[int, ForgeError], None]


class AsyncForgeClient:
    """A client of one Forge API (see sync.ForgeClient). `timeout` bounds each request (a `wait` adds its seconds);
    `stream_timeout` is how long a stream may stay silent (the api sends a heartbeat every 15
    s by default) before it counts as dropped; a stream reconnects `reconnects` times in a
    row, backing off from `backoff_s`. `api_key` (else $FORGE_API_KEY) goes to the api in
    `Authorization: Bearer`, never to the object store."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        stream_timeout: float = 60.0,
        reconnects: int = 5,
        backoff_s: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        api_key: str | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            headers={"User-Agent": wire.USER_AGENT},
            auth=wire.api_key_auth(api_key, base_url),
            transport=transport,
        )
        self._stream_timeout = httpx.Timeout(timeout, read=stream_timeout)
        self._reconnects, self._backoff_s = reconnects, backoff_s

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, url: str, **options: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **options)
        except httpx.TransportError as error:
            raise wire.unreachable(error) from None

    # --- Models ---

    async def list_models(self) -> list[ModelOut]:
        return wire.parse(await self._send("GET", "/v1/models"), ModelList).data

    async def get_model(self, name: str) -> ModelOut:
        """`name` (its newest version) or `name@version`."""
        return wire.parse(await self._send("GET", f"/v1/models/{name}"), ModelOut)

    # --- Jobs ---

    async def submit(
        self,
        model: str,
        input: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        wait: int | None = None,
    ) -> JobOut:
        """Submit a job. With an `idempotency_key`, resubmitting the same request returns the
        first job. With `wait` (1 to 60 s), the answer comes once the job has ended or that
        many seconds have passed."""
        headers = wire.wait_headers(wait)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = await self._send(
            "POST",
            "/v1/jobs",
            json=wire.submit_body(model, input, priority),
            headers=headers,
            timeout=wire.wait_timeout(self._http.timeout, wait),
        )
        return wire.parse(response, JobOut)

    async def get_job(self, job_id: uuid.UUID | str, *, wait: int | None = None) -> JobOut:
        response = await self._send(
            "GET",
            wire.job_path(job_id),
            headers=wire.wait_headers(wait),
            timeout=wire.wait_timeout(self._http.timeout, wait),
        )
        return wire.parse(response, JobOut)

    async def list_jobs(
        self, *, status: JobStatus | None = None, model: str | None = None, limit: int = 20
    ) -> JobList:
        """The newest jobs first; `next_page` goes on."""
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status.value
        if model is not None:
            params["model"] = model
        return wire.parse(await self._send("GET", "/v1/jobs", params=params), JobList)

    async def next_page(self, page: JobList) -> JobList | None:
        if page.next is None:
            return None
        return wire.parse(await self._send("GET", page.next), JobList)

    async def cancel(self, job_id: uuid.UUID | str) -> JobOut:
        return wire.parse(await self._send("POST", wire.job_path(job_id, "cancel")), JobOut)

    # --- Events ---

    async def events_page(
        self, job_id: uuid.UUID | str, *, after: int = 0, limit: int = 100
    ) -> EventPage:
        params = {"after": after, "limit": limit}
        return wire.parse(
            await self._send("GET", wire.job_path(job_id, "events"), params=params), EventPage
        )

    async def stream_events(
        self,
        job_id: uuid.UUID | str,
        *,
        after: int = 0,
        on_reconnect: OnReconnect | None = None,
    ) -> AsyncIterator[EventOut]:
        """The job's events after seq `after` as they happen, each exactly once, ending with
        its terminal event (at once if the job has ended and nothing is after `after`). A
        dropped connection is reopened after the last event delivered (`Last-Event-ID`)."""
        cursor = wire.Cursor(after)
        reconnects = wire.Reconnects(self._reconnects, self._backoff_s)
        while True:
            try:
                async with aclosing(self._stream_once(job_id, cursor)) as events:
                    async for event in events:
                        reconnects.progressed()
                        yield event
                        if event.type in wire.TERMINAL_EVENTS:
                            return
                # Ended without the terminal event: over if the job is, else reconnect.
                if (await self.get_job(job_id)).status in wire.TERMINAL_STATUSES:
                    return
                raise ApiUnreachable("the event stream ended before the job did")
            except ForgeError as error:
                delay = reconnects.after(error)
                if on_reconnect is not None:
                    on_reconnect(cursor.last, error)
                await asyncio.sleep(delay)

    async def _stream_once(
        self, job_id: uuid.UUID | str, cursor: wire.Cursor
    ) -> AsyncGenerator[EventOut]:
        url = wire.job_path(job_id, "events")
        try:
            async with aconnect_sse(
                self._http, "GET", url, headers=cursor.headers(), timeout=self._stream_timeout
            ) as source:
                if source.response.is_error:
                    await source.response.aread()
                    raise ApiError.from_response(source.response)
                async for sse in source.aiter_sse():
                    if (event := cursor.accept(sse)) is not None:
                        yield event
        except httpx.TransportError as error:
            raise wire.unreachable(error) from None

    # --- Artifacts ---

    async def artifacts(self, job_id: uuid.UUID | str) -> list[ArtifactOut]:
        return wire.parse(
            await self._send("GET", wire.job_path(job_id, "artifacts")), ArtifactList
        ).data

    async def download_artifacts(
        self, job_id: uuid.UUID | str, directory: Path
    ) -> list[wire.Download]:
        """Every artifact of the job into `directory` (created if missing), each verified
        against its recorded SHA-256 (ChecksumMismatch, leaving no file, when it differs)."""
        artifacts = await self.artifacts(job_id)
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        return [
            await self._download(artifact, directory / name)
            for artifact, name in zip(artifacts, wire.filenames(artifacts), strict=True)
        ]

    async def _download(self, artifact: ArtifactOut, path: Path) -> wire.Download:
        partial = path.with_name(f".{path.name}.partial")
        checksum = wire.Checksum(artifact)
        # File writes go to a thread: the event loop never waits on the disk.
        out = await asyncio.to_thread(partial.open, "wb")
        try:
            # A presigned URL of the object store, not of the api.
            async with self._http.stream("GET", artifact.url) as response:
                if response.is_error:
                    raise wire.download_failed(artifact, response)
                async for chunk in response.aiter_bytes():
                    checksum.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(out.close)
            checksum.verify()
            await asyncio.to_thread(partial.replace, path)
        except httpx.TransportError as error:
            raise wire.unreachable(error) from None
        finally:
            out.close()
            await asyncio.to_thread(partial.unlink, missing_ok=True)
        return wire.Download(artifact, path)
