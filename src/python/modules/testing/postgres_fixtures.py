"""PostgreSQL fixtures: the server, a migrated database private to the test process, and
per-test sessions that are rolled back. A package's conftest.py imports the ones its tests use,
so only those tests depend on persistence and the migrations.

Tests never skip for a missing service: the fixture fails the test with what is missing and
how to provide it. The server comes from FORGE_TEST_DATABASE_URL (pants.toml passes it through)
and defaults to the local one a development machine runs.
"""

import os
from collections.abc import AsyncIterator

import psycopg
import pytest
from alembic import command
from pydantic import PostgresDsn
from sqlalchemy.ext.asyncio import AsyncSession

from modules.persistence.engine import create_async_database_engine
from modules.persistence.migrate import alembic_config
from modules.settings import Settings
from modules.testing.databases import libpq_url, recreate_database
from modules.testing.isolation import execution_slot

POSTGRES_URL = os.environ.get(
    "FORGE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


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
            "Start it (DEV.md, 'Prerequisites') or set FORGE_TEST_DATABASE_URL.",
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
