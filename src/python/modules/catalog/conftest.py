from collections.abc import Iterator

import pytest
from pydantic import PostgresDsn
from sqlalchemy.orm import Session

from modules.persistence.engine import create_sync_database_engine
from modules.settings import Settings
from modules.testing.postgres_fixtures import database_url, postgres_admin_url

__all__ = ["database_url", "postgres_admin_url"]  # fixtures for these tests


@pytest.fixture()
def sync_session(database_url: str) -> Iterator[Session]:
    """A synchronous session (what sync() takes) inside a transaction that is rolled back after
    the test; the session's own commits and rollbacks only end a SAVEPOINT."""
    engine = create_sync_database_engine(Settings(database_url=PostgresDsn(database_url)))
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            session = Session(bind=connection, join_transaction_mode="create_savepoint")
            try:
                yield session
            finally:
                session.close()
                transaction.rollback()
    finally:
        engine.dispose()
