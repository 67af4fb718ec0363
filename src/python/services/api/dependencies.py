"""What routes get from the app's lifespan, as FastAPI dependencies."""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modules.jobs.models import ModelCache
from modules.persistence.statuses import JobStatus
from services.api.following import Follower
from services.api.presenters import Signer
from services.api.readiness import ReadinessChecker


@dataclass(frozen=True)
class JobsContext:
    """What the job routes need beyond a session; built by the app's lifespan."""

    max_attempts: int
    max_input_bytes: int
    max_queued: int  # per owner
    queue_full_retry_after_s: int
    models: ModelCache
    sign: Signer
    on_submitted: Callable[[str], None]  # for metrics: a job of this model (name@version)
    # For metrics: a job of this model ended here (a queued job canceled) with this status, this
    # many seconds after its submission.
    on_finished: Callable[[str, JobStatus, float], None]


async def _readiness(request: Request) -> ReadinessChecker:
    # Async on purpose: FastAPI runs a sync dependency in a thread, on every request.
    checker: ReadinessChecker = request.app.state.readiness
    return checker


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request, closed when the response is done; routes commit themselves."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


async def _jobs(request: Request) -> JobsContext:
    context: JobsContext = request.app.state.jobs
    return context


async def _follower(request: Request) -> Follower:
    follower: Follower = request.app.state.follower
    return follower


Readiness = Annotated[ReadinessChecker, Depends(_readiness)]
DatabaseSession = Annotated[AsyncSession, Depends(_session)]
JobsConfig = Annotated[JobsContext, Depends(_jobs)]
Following = Annotated[Follower, Depends(_follower)]
