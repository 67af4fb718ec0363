"""Following jobs: the event stream and `Prefer: wait`, served by uvicorn in this process over
real sockets (so a test can count the server's tasks, connections and memory), against the real
PostgreSQL. Events are written as the worker writes them, through modules.jobs, from another
connection. The safety poll is 30 s here: anything that arrives sooner came by NOTIFY."""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from modules.auth import keys
from modules.contract.v1 import EventOut
from modules.jobs import cancel, events, submission
from modules.persistence.base import JsonObject
from modules.persistence.models import Model
from modules.settings import Settings
from modules.testing.databases import libpq_url
from services.api.app import create_app
from services.api.following import SharedReads, preferred_wait, wants_stream
from services.api.notifications import APPLICATION_NAME, JobNotifier

pytestmark = pytest.mark.anyio

POLL_S = 30.0  # never reached unless a test lowers it: every other wake-up is a notification
PROMPT = 2.0  # how soon a committed event must reach a stream (slack for 2 busy cores)
OWNER = "following"
SCHEMA: JsonObject = {"type": "object", "properties": {"prompt": {"type": "string"}}}


# --- Parsing headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "stream"),
    [
        ("text/event-stream", True),
        ("application/json, text/event-stream;q=0.5", True),
        ("TEXT/EVENT-STREAM", True),
        ("text/event-stream;q=0", False),
        ("application/json", False),
        ("*/*", False),
        (None, False),
    ],
)
def test_only_an_accept_of_text_event_stream_streams(accept: str | None, stream: bool) -> None:
    assert wants_stream(accept) is stream


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        ("wait=5", 5),
        ("respond-async, wait=10", 10),
        ('wait="3"', 3),
        ("wait=600", 60),  # at most a minute
        ("wait=0", None),
        ("wait=soon", None),
        ("return=minimal", None),
        (None, None),
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_says(prefer: str | None, seconds: int | None) -> None:
    assert preferred_wait(prefer) == seconds


# --- The api in this process --------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    app: FastAPI
    port: int
    key: str  # an API key of OWNER

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def notifier(self) -> JobNotifier:
        notifier: JobNotifier = self.app.state.follower.notifier
        return notifier

    @property
    def pool(self) -> QueuePool:
        engine: AsyncEngine = self.app.state.sessions.kw["bind"]
        assert isinstance(engine.pool, QueuePool)
        return engine.pool

    def checked_out(self) -> int:
        """Pooled database connections in use."""
        return self.pool.checkedout()


@asynccontextmanager
async def served(database_url: str, **settings: Any) -> AsyncIterator[Served]:
    app = create_app(
        Settings.model_validate({"database_url": database_url, "events_poll_s": POLL_S, **settings})
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    engine = create_engine(database_url)
    with Session(engine) as session, session.begin():
        key = keys.create(session, name="following", owner=OWNER).key
    engine.dispose()
    try:
        yield Served(app, port, key)
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def listening(database_url: str, **settings: Any) -> AsyncIterator[Served]:
    async with served(database_url, **settings) as serving:
        await wait_until(lambda: serving.notifier.listening)
        yield serving


@pytest.fixture()
async def api(database_url: str) -> AsyncIterator[Served]:
    async with listening(database_url) as serving:
        yield serving


# --- Writing jobs and events, as the worker does --------------------------------------------


@pytest.fixture()
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(database_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture()
def model(sessions: sessionmaker[Session]) -> str:
    name = f"follow-{uuid.uuid4().hex[:8]}"
    with sessions() as session, session.begin():
        session.add(
            Model(
                name=name,
                version="1",
                task="text-to-image",
                runner="stub",
                input_schema=SCHEMA,
                default_parameters={},
            )
        )
    return f"{name}@1"


@dataclass(frozen=True)
class Jobs:
    sessions: sessionmaker[Session]
    model: str

    async def submit(self) -> uuid.UUID:
        """A queued job; its first event is job.queued (seq 1)."""
        wanted = submission.Submission(self.model, {"prompt": "a red fox"})
        accepted = await asyncio.to_thread(
            self._write, submission.submit, wanted, owner=OWNER, max_attempts=3
        )
        job_id: uuid.UUID = accepted.job_id
        return job_id

    async def log(self, job_id: uuid.UUID, *messages: str) -> None:
        """step.log events, committed together."""
        new = [events.NewEvent("step.log", {"message": message}) for message in messages]
        await asyncio.to_thread(self._write, events.append, job_id, *new)

    async def cancel(self, job_id: uuid.UUID) -> None:
        """A queued job ends at once: status canceled, event job.canceled."""
        await asyncio.to_thread(self._write, cancel.cancel, job_id, owner=OWNER)

    def _write(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        with self.sessions() as session, session.begin():
            return function(session, *args, **kwargs)


@pytest.fixture()
def jobs(sessions: sessionmaker[Session], model: str) -> Jobs:
    return Jobs(sessions, model)


# --- Reading a stream as it comes -----------------------------------------------------------


@dataclass(frozen=True)
class Received:
    id: str | None
    event: str | None
    data: str | None
    comment: str | None


class Stream:
    """The lines of an open stream, gathered into events and comments."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout_s: float = PROMPT) -> Received | None:
        """The next event or comment; None when the stream ended."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout_s):
            async for line in self._lines:
                if not line:
                    if fields:
                        break
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
            else:
                if not fields:
                    return None
        return Received(fields.get("id"), fields.get("event"), fields.get("data"), fields.get(""))

    async def events(self, count: int) -> list[EventOut]:
        """The next `count` events, skipping heartbeats; each one's id and type match it."""
        found: list[EventOut] = []
        while len(found) < count:
            received = await self.next()
            assert received is not None, f"the stream ended after {found}"
            if received.comment is not None:
                continue
            assert received.data is not None
            event = EventOut.model_validate_json(received.data)
            assert (received.id, received.event) == (str(event.seq), event.type)
            found.append(event)
        return found

    async def ends(self) -> None:
        """Nothing but heartbeats until the stream ends."""
        while (received := await self.next()) is not None:
            assert received.comment is not None, f"an event after the end: {received}"


@asynccontextmanager
async def stream(
    api: Served, job_id: uuid.UUID, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[Stream]:
    async with (
        httpx.AsyncClient(base_url=api.url, headers=api.auth, timeout=10) as client,
        client.stream(
            "GET",
            f"/v1/jobs/{job_id}/events",
            params=params,
            headers={"Accept": "text/event-stream", **(headers or {})},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


async def wait_until(condition: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.02)


# --- The stream -----------------------------------------------------------------------------


async def test_a_stream_delivers_events_as_they_commit_and_ends_after_the_terminal_one(
    api: Served, jobs: Jobs
) -> None:
    job_id = await jobs.submit()
    async with stream(api, job_id) as events:
        assert [e.type for e in await events.events(1)] == ["job.queued"]
        await jobs.log(job_id, "one", "two")
        logged = await events.events(2)
        assert [(e.seq, e.payload["message"]) for e in logged] == [(2, "one"), (3, "two")]
        await jobs.cancel(job_id)
        assert [(e.seq, e.type) for e in await events.events(1)] == [(4, "job.canceled")]
        await events.ends()


async def test_a_read_gives_its_connection_back_to_the_pool_in_transactions(
    database_url: str, jobs: Jobs
) -> None:
    # Reads run without a transaction. A connection left so would make a later request's
    # statements commit one by one: the pool must restore it.
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
    sessions = async_sessionmaker(engine)
    job_id = await jobs.submit()
    page = await SharedReads(sessions).read(job_id, 0, not_before=0.0)
    assert page is not None
    assert [kind for _, kind, _ in page.events] == ["job.queued"]
    async with sessions() as session:  # the same, only, connection
        connection = await (await session.connection()).get_raw_connection()
        assert connection.driver_connection is not None
        assert connection.driver_connection.autocommit is False
    await engine.dispose()


async def test_a_resumed_stream_sends_every_later_event_exactly_once(
    api: Served, jobs: Jobs
) -> None:
    job_id = await jobs.submit()
    await jobs.log(job_id, "a", "b", "c")
    await jobs.cancel(job_id)  # seqs 1 to 5, the job ended

    async with stream(api, job_id, headers={"Last-Event-ID": "2"}) as events:
        assert [e.seq for e in await events.events(3)] == [3, 4, 5]
        await events.ends()
    async with stream(api, job_id, after=4) as events:
        assert [e.seq for e in await events.events(1)] == [5]
        await events.ends()
    # Last-Event-ID (what a reconnecting EventSource sends) wins over the URL's `after`.
    async with stream(api, job_id, headers={"Last-Event-ID": "3"}, after=0) as events:
        assert [e.seq for e in await events.events(2)] == [4, 5]
        await events.ends()
    # An ended job with nothing after the cursor: the stream ends at once.
    async with stream(api, job_id, headers={"Last-Event-ID": "5"}) as events:
        await events.ends()


async def test_many_streams_of_one_job_each_get_every_event_once(api: Served, jobs: Jobs) -> None:
    """They share their reads: each commit must still reach every one of them."""
    job_id = await jobs.submit()
    async with AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(stream(api, job_id)) for _ in range(50)]
        for followed in streams:
            await followed.events(1)
        for message in ("a", "b", "c"):  # one commit each, back to back
            await jobs.log(job_id, message)
        await jobs.cancel(job_id)
        for followed in streams:
            assert [e.seq for e in await followed.events(4)] == [2, 3, 4, 5]
            await followed.ends()


async def test_a_quiet_stream_sends_heartbeat_comments(database_url: str, jobs: Jobs) -> None:
    job_id = await jobs.submit()
    async with (
        listening(database_url, events_heartbeat_s=0.2) as api,
        stream(api, job_id) as events,
    ):
        await events.events(1)
        comments = [await events.next() for _ in range(3)]
        assert all(c is not None and c.comment == "heartbeat" for c in comments)


async def test_a_stream_of_an_unknown_job_is_a_404_problem_before_any_event(api: Served) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=api.auth) as client:
        response = await client.get(
            f"/v1/jobs/{uuid.uuid4()}/events", headers={"Accept": "text/event-stream"}
        )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Not Found"


async def test_without_accept_event_stream_the_events_are_a_json_page(
    api: Served, jobs: Jobs
) -> None:
    job_id = await jobs.submit()
    await jobs.log(job_id, "a")
    async with httpx.AsyncClient(base_url=api.url, headers=api.auth) as client:
        response = await client.get(f"/v1/jobs/{job_id}/events", params={"after": 1})
    assert response.status_code == 200
    assert [event["seq"] for event in response.json()["data"]] == [2]


async def test_streams_survive_a_lost_listening_connection(
    api: Served, jobs: Jobs, database_url: str
) -> None:
    job_id = await jobs.submit()
    async with stream(api, job_id) as events:
        await events.events(1)
        name = make_url(database_url).database
        with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
            lost = listener_pid(admin, name)
            admin.execute("SELECT pg_terminate_backend(%s)", (lost,))  # as a restart would
        await wait_until(lambda: not api.notifier.listening)
        # Committed while nobody listens: the listener, back, wakes every stream.
        await jobs.log(job_id, "while away")
        assert [e.payload["message"] for e in await events.events(1)] == ["while away"]
        assert api.notifier.listening
        with psycopg.connect(libpq_url(database_url)) as admin:
            assert listener_pid(admin, name) != lost
        await jobs.log(job_id, "after")
        assert [e.payload["message"] for e in await events.events(1)] == ["after"]


async def test_streams_poll_while_the_api_cannot_listen(
    database_url: str, postgres_admin_url: str, jobs: Jobs
) -> None:
    job_id = await jobs.submit()  # the writer has its connection from now on
    async with listening(database_url, events_poll_s=0.5) as api, stream(api, job_id) as events:
        await events.events(1)  # and so has the api's pool
        name = make_url(database_url).database
        with psycopg.connect(libpq_url(postgres_admin_url), autocommit=True) as admin:
            # New connections are refused: the listener cannot come back, pooled ones work on.
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            try:
                admin.execute("SELECT pg_terminate_backend(%s)", (listener_pid(admin, name),))
                await wait_until(lambda: not api.notifier.listening)
                await jobs.log(job_id, "polled")
                assert [e.payload["message"] for e in await events.events(1)] == ["polled"]
                assert not api.notifier.listening
            finally:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await wait_until(lambda: api.notifier.listening)


def listener_pid(connection: psycopg.Connection[Any], database: str | None) -> int:
    """The server process of the api's LISTEN connection to `database`."""
    row = connection.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
        (APPLICATION_NAME, database),
    ).fetchone()
    assert row is not None, "the api does not listen"
    return int(row[0])


async def test_dropped_streams_leave_no_task_connection_or_memory_behind(
    api: Served, jobs: Jobs
) -> None:
    job_ids = [await jobs.submit() for _ in range(10)]
    tasks = len(asyncio.all_tasks())
    await open_and_drop(api, job_ids, 1)
    # sse-starlette's shutdown watcher starts with the first stream and stays.
    await settle(api, tasks + 1)
    tasks, descriptors = len(asyncio.all_tasks()), open_descriptors()

    await open_and_drop(api, job_ids, 1000)
    await settle(api, tasks)
    memory = resident_bytes()
    await open_and_drop(api, job_ids, 1000)
    await settle(api, tasks)

    assert len(asyncio.all_tasks()) == tasks
    assert api.notifier.waiting == 0
    assert REGISTRY.get_sample_value("forge_event_streams_open") == 0
    assert api.checked_out() == 0
    # The pool may keep more connections open than before (up to its size).
    assert open_descriptors() <= descriptors + api.pool.size()
    # A leak of 20 kB per stream would show as 20 MB here.
    assert resident_bytes() - memory < 20 * 2**20


async def open_and_drop(api: Served, job_ids: list[uuid.UUID], count: int) -> None:
    """`count` streams open at once (each has its first event), then every client goes away."""
    connections: list[asyncio.StreamWriter] = []
    batch = 25  # opening: no request should wait long for one of the pool's 15 connections
    for start in range(0, count, batch):
        ids = [job_ids[i % len(job_ids)] for i in range(start, min(start + batch, count))]
        connections += await asyncio.gather(*(open_raw_stream(api, job_id) for job_id in ids))
    assert REGISTRY.get_sample_value("forge_event_streams_open") == count
    for writer in connections:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for writer in connections))


async def open_raw_stream(api: Served, job_id: uuid.UUID) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    request = (
        f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: forge.test\r\n"
        f"Authorization: Bearer {api.key}\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    await reader.readuntil(b"event: job.queued")
    return writer


async def settle(api: Served, tasks: int) -> None:
    """Until the server has noticed every client is gone: `tasks` are left."""
    await wait_until(
        lambda: len(asyncio.all_tasks()) == tasks and api.notifier.waiting == 0, timeout_s=30
    )


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def resident_bytes() -> int:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) * 1024


# --- Prefer: wait ---------------------------------------------------------------------------


async def test_prefer_wait_answers_as_soon_as_the_job_ends(api: Served, jobs: Jobs) -> None:
    job_id = await jobs.submit()
    async with httpx.AsyncClient(base_url=api.url, headers=api.auth, timeout=30) as client:
        held = asyncio.create_task(client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=20"}))
        await asyncio.sleep(0.5)
        assert not held.done()
        await jobs.cancel(job_id)
        ended = time.monotonic()
        response = await held
    assert time.monotonic() - ended < PROMPT
    assert response.status_code == 200
    assert response.headers["preference-applied"] == "wait=20"
    assert response.json()["status"] == "canceled"


async def test_prefer_wait_answers_after_n_seconds_with_the_job_as_it_is(
    api: Served, jobs: Jobs
) -> None:
    job_id = await jobs.submit()
    async with httpx.AsyncClient(base_url=api.url, headers=api.auth, timeout=30) as client:
        started = time.monotonic()
        response = await client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=1"})
    assert 1 <= time.monotonic() - started < 1 + PROMPT
    assert response.headers["preference-applied"] == "wait=1"
    assert response.json()["status"] == "queued"


async def test_held_requests_hold_no_pooled_connection(api: Served, jobs: Jobs) -> None:
    job_ids = [await jobs.submit() for _ in range(20)]  # more than the pool's 5 + 10
    async with httpx.AsyncClient(base_url=api.url, headers=api.auth, timeout=30) as client:
        held = [
            asyncio.create_task(client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=10"}))
            for job_id in job_ids
        ]
        # All of them held at once, and not one pooled connection in use.
        await wait_until(lambda: api.notifier.waiting == len(job_ids) and api.checked_out() == 0)
        for job_id in job_ids:
            await jobs.cancel(job_id)
        responses = await asyncio.gather(*held)
    assert {response.json()["status"] for response in responses} == {"canceled"}


async def test_an_ended_job_is_answered_at_once_despite_prefer_wait(
    api: Served, jobs: Jobs
) -> None:
    job_id = await jobs.submit()
    await jobs.cancel(job_id)
    async with httpx.AsyncClient(base_url=api.url, headers=api.auth, timeout=30) as client:
        started = time.monotonic()
        response = await client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"})
    assert time.monotonic() - started < PROMPT
    assert response.json()["status"] == "canceled"
    assert response.headers["preference-applied"] == "wait=30"
