"""The schema revision check against real databases: at head, behind, ahead, not migrated."""

from collections.abc import AsyncIterator

import psycopg
import pytest
from alembic import command
from pydantic import PostgresDsn
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from modules.persistence.engine import create_async_database_engine
from modules.persistence.migrate import alembic_config
from modules.persistence.schema import ExpectedSchema, SchemaMismatch
from modules.settings import Settings
from modules.testing.databases import libpq_url, recreate_database

EXPECTED = ExpectedSchema.from_migrations()
(HEAD,) = EXPECTED.heads
# As if the code carried one more migration than the database has.
NEWER_CODE = ExpectedSchema(
    heads=frozenset({"feedfacecafe"}), known=EXPECTED.known | {"feedfacecafe"}
)


@pytest.fixture()
def scratch_url(postgres_admin_url: str, database_url: str) -> str:
    return recreate_database(postgres_admin_url, f"{make_url(database_url).database}_schema")


pytestmark = pytest.mark.anyio


@pytest.fixture()
async def engine(scratch_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_database_engine(Settings(database_url=PostgresDsn(scratch_url)))
    yield engine
    await engine.dispose()


def migrate(url: str) -> None:
    with alembic_config(Settings(database_url=PostgresDsn(url))) as config:
        command.upgrade(config, "head")


async def verify(engine: AsyncEngine, expected: ExpectedSchema = EXPECTED) -> str:
    async with engine.connect() as connection:
        return await expected.verify(connection)


async def test_the_migrations_carried_end_at_one_head_the_database_reaches(
    scratch_url: str, engine: AsyncEngine
) -> None:
    migrate(scratch_url)
    assert await verify(engine) == f"at revision {HEAD}"


async def test_a_database_the_code_has_newer_migrations_for_is_behind(
    scratch_url: str, engine: AsyncEngine
) -> None:
    migrate(scratch_url)
    with pytest.raises(SchemaMismatch) as raised:
        await verify(engine, NEWER_CODE)
    assert str(raised.value) == f"schema behind: database at {HEAD}, code expects feedfacecafe"


async def test_a_database_at_a_revision_the_code_does_not_know_is_ahead(
    scratch_url: str, engine: AsyncEngine
) -> None:
    migrate(scratch_url)
    with psycopg.connect(libpq_url(scratch_url)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0123456789ab'")
    with pytest.raises(SchemaMismatch) as raised:
        await verify(engine)
    assert str(raised.value) == f"schema ahead: database at 0123456789ab, code expects {HEAD}"


async def test_an_empty_database_is_not_migrated(engine: AsyncEngine) -> None:
    with pytest.raises(SchemaMismatch) as raised:
        await verify(engine)
    assert str(raised.value) == f"not migrated: no revision applied, code expects {HEAD}"
