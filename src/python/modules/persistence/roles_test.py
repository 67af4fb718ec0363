"""Least privilege: compose/postgres/forge-roles.sh gives the migrations an owner role and the
services an application role that may only read and write rows. Run against the real server,
as the Compose stack runs it, then the real migrations as the owner."""

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors
from pydantic import PostgresDsn
from sqlalchemy import make_url

from modules.persistence.engine import create_async_database_engine, create_session_factory
from modules.persistence.models import Model
from modules.persistence.repositories import ModelRepository
from modules.settings import Settings
from modules.testing.databases import libpq_url
from modules.testing.roles import database_with_roles


@pytest.fixture(scope="module")
def role_urls(postgres_admin_url: str, database_url: str) -> Iterator[tuple[str, str]]:
    with database_with_roles(
        postgres_admin_url, f"{make_url(database_url).database}_roles"
    ) as urls:
        yield urls


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id int)",
        "DROP TABLE jobs",
        "ALTER TABLE jobs ADD COLUMN intruder int",
        "TRUNCATE events",
        "CREATE SCHEMA intruder",
    ],
)
def test_the_application_role_cannot_change_the_schema(
    role_urls: tuple[str, str], statement: str
) -> None:
    _, app_url = role_urls
    with psycopg.connect(libpq_url(app_url)) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_application_role_is_no_superuser(role_urls: tuple[str, str]) -> None:
    _, app_url = role_urls
    with psycopg.connect(libpq_url(app_url)) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row == (False, False, False)


@pytest.mark.anyio()
async def test_the_application_role_reads_and_writes_rows(role_urls: tuple[str, str]) -> None:
    _, app_url = role_urls
    engine = create_async_database_engine(Settings(database_url=PostgresDsn(app_url)))
    try:
        async with create_session_factory(engine)() as session:
            models = ModelRepository(session)
            model = await models.create(
                Model(name="roles", version="1", task="t", runner="r", input_schema={})
            )
            await session.commit()
            assert (await models.get(model.id)) is not None
            await session.delete(model)
            await session.commit()
    finally:
        await engine.dispose()
