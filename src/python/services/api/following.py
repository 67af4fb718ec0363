"""Following a job: its events as a Server-Sent Events stream, and requests held until the job
ends (`Prefer: wait=N`). Both wake on the JobNotifier and read with sessions of their own, each
closed after its read, so an idle follower holds no pooled database connection."""

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

from fastapi import HTTPException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from modules.contract.v1 import EventOut
from modules.jobs import reads, updates
from modules.jobs.reads import JobView
from modules.jobs.updates import EventRecord
from modules.persistence.statuses import JobStatus
from services.api.metrics import OPEN_STREAMS
from services.api.notifications import JobNotifier

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
# Events read per query while catching up.
PAGE = 100
# `Prefer: wait=N` (RFC 7240): at most this many seconds.
MAX_WAIT_S = 60
_WAIT = re.compile(r"^\s*wait\s*=\s*\"?(\d+)\"?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Page:
    """What a follower reads: the job's status, then its events after a cursor, each encoded
    once as its Server-Sent Event (`id:` seq, `event:` type, `data:` the event as JSON)."""

    status: JobStatus
    events: list[tuple[int, str, bytes]]  # seq, type, the encoded event


class SharedReads:
    """Followers of a job that stand at the same cursor share one read, if it started after
    whatever woke them: 500 streams of one job woken by one commit cost one query, not 500."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # (job, cursor) -> (loop time the read started, the read)
        self._reads: dict[tuple[uuid.UUID, int], tuple[float, asyncio.Task[Page | None]]] = {}

    async def read(self, job_id: uuid.UUID, cursor: int, not_before: float) -> Page | None:
        """The job's page after `cursor` from a read that started at `not_before` or later;
        None when there is no such job."""
        key = (job_id, cursor)
        entry = self._reads.get(key)
        if entry is None or entry[0] < not_before:
            loop = asyncio.get_running_loop()
            entry = (loop.time(), loop.create_task(self._read(job_id, cursor)))
            self._reads[key] = entry
            entry[1].add_done_callback(partial(self._done, key, entry))
        # A follower that goes away while it waits must not cancel the others' read.
        return await asyncio.shield(entry[1])

    async def _read(self, job_id: uuid.UUID, cursor: int) -> Page | None:
        async with self._sessions() as session:
            # One statement needs no transaction: without BEGIN and ROLLBACK a read is two
            # round trips (the pool's ping and the statement), not four. The pool restores the
            # connection's isolation level when it takes it back.
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            progress = await session.run_sync(updates.read_after, job_id, cursor, PAGE)
        if progress is None:
            return None
        return Page(progress.status, [(e.seq, e.type, _encode(e)) for e in progress.events])

    def _done(
        self,
        key: tuple[uuid.UUID, int],
        entry: tuple[float, asyncio.Task[Page | None]],
        task: asyncio.Task[Page | None],
    ) -> None:
        if self._reads.get(key) is entry:
            del self._reads[key]
        if not task.cancelled():
            task.exception()  # retrieved here too: every follower may have gone meanwhile


def _encode(event: EventRecord) -> bytes:
    body = EventOut(
        seq=event.seq, type=event.type, payload=event.payload, created_at=event.created_at
    )
    sse = ServerSentEvent(body.model_dump_json(), id=str(event.seq), event=event.type, sep="\n")
    return sse.encode()


@dataclass(frozen=True)
class Follower:
    """What following needs from the app; built by its lifespan."""

    sessions: async_sessionmaker[AsyncSession]
    notifier: JobNotifier
    heartbeat_s: float
    reads: SharedReads

    async def hold(self, session: AsyncSession, view: JobView, seconds: int) -> JobView | None:
        """`Prefer: wait`: the job as it is once it has ended or `seconds` have passed (None
        if it was deleted meanwhile). `session` (the request's) is closed while waiting, so a
        held request holds no pooled connection."""
        if updates.is_terminal(view.job.status):
            return view
        await session.close()
        await self._wait_until_ended(view.job.id, seconds)
        return await session.run_sync(reads.get_job, view.job.id, owner=view.job.owner)

    async def _wait_until_ended(self, job_id: uuid.UUID, seconds: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        with self.notifier.subscribe(job_id) as wakeup:
            while True:
                async with self.sessions() as session:
                    status = await session.run_sync(updates.status, job_id)
                remaining = deadline - loop.time()
                if status is None or updates.is_terminal(status) or remaining <= 0:
                    return
                await wakeup.wait(remaining)

    async def stream(
        self, session: AsyncSession, job_id: uuid.UUID, after: int, *, owner: str
    ) -> EventSourceResponse:
        """The job's events after seq `after` as Server-Sent Events: `id:` the seq, `event:`
        the type, `data:` the event as JSON; a comment line every heartbeat_s without events.
        It ends after the job's terminal event, or at once when the job has ended and nothing
        is after `after`. An unknown job is a 404, before the stream starts. `session` (the
        request's) is closed: the stream reads with sessions of its own, one per read."""
        exists = await session.run_sync(updates.status, job_id, owner=owner) is not None
        await session.close()
        if not exists:
            raise HTTPException(404, f"No job {job_id}.")
        return EventSourceResponse(
            self._events(job_id, after),
            ping=self.heartbeat_s,
            ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
            sep="\n",
        )

    async def _events(self, job_id: uuid.UUID, after: int) -> AsyncIterator[bytes]:
        cursor = after
        loop = asyncio.get_running_loop()
        # Cancelled where it waits when the client goes away: the subscription and the gauge
        # are released on the way out.
        with self.notifier.subscribe(job_id) as wakeup, OPEN_STREAMS.track_inprogress():
            read_after = loop.time()  # subscribed: whatever commits from now on wakes it
            while True:
                try:
                    page = await self.reads.read(job_id, cursor, read_after)
                except DBAPIError as error:
                    # Ends the stream cleanly; the client resumes from its last id once the
                    # database answers again.
                    logger.warning("event stream of job %s ends: database error: %s", job_id, error)
                    return
                if page is None:  # the job was deleted meanwhile
                    return
                for seq, kind, encoded in page.events:
                    cursor = seq
                    yield encoded
                    if kind in updates.TERMINAL_EVENTS:
                        return
                if len(page.events) == PAGE:
                    read_after = loop.time()  # catching up: read on at once
                elif not page.events and updates.is_terminal(page.status):
                    return
                else:
                    read_after = await wakeup.wait()


def wants_stream(accept: str | None) -> bool:
    """Whether an Accept header asks for text/event-stream (with a non-zero quality)."""
    for media_range in (accept or "").split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type.lower() != EVENT_STREAM:
            continue
        quality = next((p.partition("=")[2] for p in parameters if p.startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            return True  # an unreadable quality counts as the default, 1
    return False


def preferred_wait(prefer: str | None) -> int | None:
    """The seconds a `Prefer` header's `wait=N` asks for, at most MAX_WAIT_S; None when it
    asks for no wait (absent, zero or unreadable: RFC 7240 lets a server ignore those)."""
    for preference in (prefer or "").split(","):
        if match := _WAIT.match(preference.split(";")[0]):
            seconds = int(match.group(1))
            return min(seconds, MAX_WAIT_S) if seconds >= 1 else None
    return None
