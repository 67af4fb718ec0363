"""Engines and sessions, built from the shared settings.

Whoever creates an engine owns it and disposes of it: the api creates the async engine and its
session factory in its lifespan and awaits `engine.dispose()` at shutdown; a worker process
creates its sync engine after the fork (a pool must never cross a fork) and disposes of it when
the process ends; migrations create and dispose of their own.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from modules.settings import Settings


class DatabaseUnreachable(Exception):
    """No connection could be opened; str() is one line naming the database, never its
    password."""


def create_async_database_engine(settings: Settings, *, pooled: bool = True) -> AsyncEngine:
    """The api's engine (psycopg in async mode). Unpooled, every connection is opened for its
    use and closed after it: for a process that forks (a pool must never cross a fork)."""
    if not pooled:
        return create_async_engine(
            str(settings.database_url), poolclass=NullPool, connect_args=_connect_args(settings)
        )
    return create_async_engine(str(settings.database_url), **_pooled(settings))


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Committed objects stay readable: reloading expired attributes would need awaited IO.
    return async_sessionmaker(engine, expire_on_commit=False)


def create_sync_database_engine(settings: Settings) -> Engine:
    """The engine of synchronous code: Alembic and the worker's tasks."""
    return create_engine(str(settings.database_url), **_pooled(settings))


def _pooled(settings: Settings) -> dict[str, Any]:
    """The pool of either engine. Its connections, FORGE_DATABASE_POOL_SIZE at most, stay open
    once opened: one beyond the pool (SQLAlchemy's overflow) would be closed when given back, so
    under sustained load every checkout past the pool's size would open a new PostgreSQL
    backend. At the limit a checkout waits for a connection to come back."""
    return {
        "pool_size": settings.database_pool_size,
        "max_overflow": 0,
        "pool_pre_ping": True,  # a PostgreSQL restart must not fail the next request
        "connect_args": _connect_args(settings),
    }


def libpq_conninfo(settings: Settings) -> str:
    """FORGE_DATABASE_URL for psycopg itself: a connection of its own that no pool holds, such
    as one that listens for notifications."""
    url = make_url(str(settings.database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _connect_args(settings: Settings) -> dict[str, int]:
    # libpq's connect_timeout counts whole seconds.
    return {"connect_timeout": math.ceil(settings.database_connect_timeout_s)}


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection from `engine`; failing to open one raises DatabaseUnreachable."""
    try:
        connection = engine.connect()
    except OperationalError as error:
        reason = " ".join(str(error.orig).split())  # libpq's messages span several lines
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnreachable(f"cannot connect to PostgreSQL at {where}: {reason}") from error
    with connection:
        yield connection
