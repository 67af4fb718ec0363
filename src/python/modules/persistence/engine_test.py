import asyncio

import pytest
from pydantic import PostgresDsn
from sqlalchemy import AsyncAdaptedQueuePool, text

from modules.persistence.engine import (
    create_async_database_engine,
    create_session_factory,
    create_sync_database_engine,
)
from modules.settings import Settings


@pytest.fixture()
def settings(database_url: str) -> Settings:
    return Settings(database_url=PostgresDsn(database_url), database_pool_size=3)


@pytest.mark.anyio()
async def test_async_sessions_reach_the_database(settings: Settings) -> None:
    engine = create_async_database_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            assert await session.scalar(text("SELECT 1")) == 1
        assert isinstance(engine.pool, AsyncAdaptedQueuePool)
        assert engine.pool.size() == settings.database_pool_size
    finally:
        await engine.dispose()


def test_sync_engine_reaches_the_database(settings: Settings) -> None:
    engine = create_sync_database_engine(settings)
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()


@pytest.mark.anyio()
async def test_the_pool_keeps_what_it_opened_and_opens_no_more_than_its_size(
    settings: Settings,
) -> None:
    engine = create_async_database_engine(settings)
    pool = engine.pool
    assert isinstance(pool, AsyncAdaptedQueuePool)
    try:
        held = [await engine.connect() for _ in range(settings.database_pool_size)]
        one_more = asyncio.create_task(engine.connect().start())
        await asyncio.sleep(0.5)
        assert not one_more.done()  # waits for a connection instead of opening another
        assert pool.checkedout() == settings.database_pool_size

        await held.pop().close()
        held.append(await asyncio.wait_for(one_more, 5))  # it got the one given back
        for connection in held:
            await connection.close()
        # Each connection opened under load is kept, none closed on its way back.
        assert pool.checkedin() == settings.database_pool_size
    finally:
        await engine.dispose()
