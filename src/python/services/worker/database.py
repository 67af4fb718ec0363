"""The worker's database access: one engine per process, created in the process that uses it.

A connection pool must never cross a fork (parent and child would share sockets), and Celery
forks its pool processes from the main one. So the engine is made on first use in each process
and disposed when the pool process exits (see celery_app).
"""

import os

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from modules.persistence.engine import DatabaseUnreachable, connect, create_sync_database_engine
from modules.settings import Settings

_settings: Settings | None = None
_engine: Engine | None = None
_engine_pid: int | None = None


def configure(settings: Settings) -> None:
    """Set the database every later engine of this process connects to."""
    global _settings
    dispose()
    _settings = settings


def engine() -> Engine:
    global _engine, _engine_pid
    if _engine is None or _engine_pid != os.getpid():
        if _settings is None:
            raise RuntimeError("database.configure() has not run in this process")
        _engine, _engine_pid = create_sync_database_engine(_settings), os.getpid()
    return _engine


def session() -> Session:
    """A new ORM session on this process's engine; use it as a context manager."""
    return Session(engine())


def dispose() -> None:
    global _engine
    if _engine is not None and _engine_pid == os.getpid():
        _engine.dispose()
    _engine = None


def status() -> str:
    """'ok' when PostgreSQL answers SELECT 1, else why not (one line, for health replies)."""
    try:
        with connect(engine()) as connection:
            connection.execute(text("SELECT 1"))
    except DatabaseUnreachable as error:  # one line, naming the database without its password
        return f"unavailable: {error}"
    except SQLAlchemyError as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"
