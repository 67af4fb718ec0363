"""What routes get from the app's lifespan, as FastAPI dependencies."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.readiness import ReadinessChecker


async def _readiness(request: Request) -> ReadinessChecker:
    # Async on purpose: FastAPI runs a sync dependency in a thread, on every request.
    checker: ReadinessChecker = request.app.state.readiness
    return checker


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request, closed when the response is done; routes commit themselves."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


Readiness = Annotated[ReadinessChecker, Depends(_readiness)]
DatabaseSession = Annotated[AsyncSession, Depends(_session)]
