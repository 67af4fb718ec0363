from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from modules.persistence.base import JsonObject
from modules.persistence.models import Model
from modules.testing.postgres_fixtures import database_url, postgres_admin_url
from modules.testing.redis_fixtures import redis_base_url
from modules.testing.s3_fixtures import s3_endpoint_url

__all__ = ["database_url", "postgres_admin_url", "redis_base_url", "s3_endpoint_url"]

SCHEMA: JsonObject = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        "seed": {"type": "integer", "minimum": 0},
        "step_duration_s": {"type": "number", "minimum": 0},
        "fail_at_step": {"type": "integer", "minimum": 0},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
    },
    "required": ["prompt"],
    "additionalProperties": False,
}


@pytest.fixture()
def engine(database_url: str) -> Iterator[Engine]:
    """The test database, emptied: these tests commit, from several connections at once."""
    engine = create_engine(database_url, pool_size=25)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE models, jobs CASCADE"))
    yield engine
    engine.dispose()


@pytest.fixture()
def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture()
def model(sessions: sessionmaker[Session]) -> Model:
    """A model on the stub runner, with a default seed."""
    with sessions() as session, session.begin():
        row = Model(
            name="stub-test",
            version="1",
            task="text-to-image",
            runner="stub",
            input_schema=SCHEMA,
            default_parameters={"seed": 1, "width": 32, "height": 32},
        )
        session.add(row)
    return row
