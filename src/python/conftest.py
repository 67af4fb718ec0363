"""Fixtures for the real services Forge's tests talk to: PostgreSQL (plus a migrated database
and per-test sessions), Redis and an S3 server.

Tests never skip for a missing service: each fixture fails the test with what is missing and
how to provide it. Service locations come from FORGE_TEST_* variables (pants.toml passes them
through) and default to the local services a development machine runs.
"""

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
import redis
from alembic import command
from pydantic import PostgresDsn
from sqlalchemy.ext.asyncio import AsyncSession

from modules.persistence.engine import create_async_database_engine
from modules.persistence.migrate import alembic_config
from modules.settings import Settings
from modules.testing.databases import libpq_url, recreate_database
from modules.testing.isolation import execution_slot
from modules.testing.processes import python_subprocess_env, reserve_free_port, wait_for_port

POSTGRES_URL = os.environ.get(
    "FORGE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """SQLAlchemy URL of a reachable PostgreSQL database that the tests may create databases
    from (it needs CREATEDB)."""
    try:
        with psycopg.connect(libpq_url(POSTGRES_URL), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        pytest.fail(
            f"PostgreSQL is required but not reachable at {POSTGRES_URL} ({error}). "
            "Start it (DEV.md, 'Local services') or set FORGE_TEST_DATABASE_URL.",
            pytrace=False,
        )
    return POSTGRES_URL


@pytest.fixture(scope="session")
def database_url(postgres_admin_url: str) -> str:
    """SQLAlchemy URL of `forge_test_<slot>`, a database private to this test process, created
    afresh and migrated to head by the real migrations."""
    url = recreate_database(postgres_admin_url, f"forge_test_{execution_slot()}")
    with alembic_config(Settings(database_url=PostgresDsn(url))) as config:
        command.upgrade(config, "head")
    return url


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (`@pytest.mark.anyio`) run on asyncio, like the api."""
    return "asyncio"


@pytest.fixture()
async def db_session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test, so tests never see
    each other's rows. The session's own commits and rollbacks only end a SAVEPOINT."""
    engine = create_async_database_engine(Settings(database_url=PostgresDsn(database_url)))
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            session = AsyncSession(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            )
            try:
                yield session
            finally:
                await session.close()
                await transaction.rollback()
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def redis_base_url() -> str:
    """URL of a reachable Redis server, without a database number (see `execution_slot`)."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        pytest.fail(
            f"Redis is required but not reachable at {REDIS_URL} ({error}). "
            "Start it (DEV.md, 'Local services') or set FORGE_TEST_REDIS_URL.",
            pytrace=False,
        )
    return REDIS_URL.rstrip("/")


@pytest.fixture(scope="session")
def s3_endpoint_url() -> Iterator[str]:
    """An S3 server over HTTP (moto's server, in its own process) for the whole session."""
    port = reserve_free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=python_subprocess_env(),
        stdout=subprocess.DEVNULL,  # one line per request; errors still reach stderr
    )
    try:
        wait_for_port("127.0.0.1", port, 20, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
