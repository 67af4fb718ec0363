"""Following a job: its events as a Server-Sent Events stream, and requests held until the job
ends (`Prefer: wait=N`). Both wake on the JobNotifier and read with sessions of their own, each
closed after its read, so an idle follower holds no pooled database connection."""

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from modules.contract.v1 import EventOut
from modules.jobs import reads, updates
from modules.jobs.reads import JobView
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
class Follower:
    """What following needs from the app; built by its lifespan."""

    sessions: async_sessionmaker[AsyncSession]
    notifier: JobNotifier
    heartbeat_s: float
    poll_s: float

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
                await wakeup.wait(min(remaining, self.poll_s))

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

    async def _events(self, job_id: uuid.UUID, after: int) -> AsyncIterator[ServerSentEvent]:
        cursor = after
        # Cancelled where it waits when the client goes away: the subscription and the gauge
        # are released on the way out.
        with self.notifier.subscribe(job_id) as wakeup, OPEN_STREAMS.track_inprogress():
            while True:
                try:
                    async with self.sessions() as session:
                        progress = await session.run_sync(updates.read_after, job_id, cursor, PAGE)
                except DBAPIError as error:
                    # Ends the stream cleanly; the client resumes from its last id once the
                    # database answers again.
                    logger.warning("event stream of job %s ends: database error: %s", job_id, error)
                    return
                if progress is None:  # the job was deleted meanwhile
                    return
                for event in progress.events:
                    cursor = event.seq
                    body = EventOut(
                        seq=event.seq,
                        type=event.type,
                        payload=event.payload,
                        created_at=event.created_at,
                    )
                    yield ServerSentEvent(
                        body.model_dump_json(), id=str(event.seq), event=event.type
                    )
                    if event.type in updates.TERMINAL_EVENTS:
                        return
                if len(progress.events) == PAGE:
                    continue  # catching up: read on at once
                if not progress.events and updates.is_terminal(progress.status):
                    return
                await wakeup.wait(self.poll_s)


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
