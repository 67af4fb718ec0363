"""Least privilege: compose/postgres/forge-roles.sh gives the migrations an owner role and the
services an application role that may only read and write rows. Run against the real server,
as the Compose stack runs it, then the real migrations as the owner."""

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import create_engine, delete, func, make_url, select
from sqlalchemy.orm import sessionmaker

from modules.auth import keys
from modules.jobs import cancel, claims, submission
from modules.jobs.reconcile import LOCK_KEY
from modules.persistence.models import ApiKey, Job, Model
from modules.persistence.statuses import JobStatus
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


def test_the_application_role_runs_the_job_transitions(role_urls: tuple[str, str]) -> None:
    """What the api and the worker do, as the application role: insert and update rows, take
    advisory and row locks."""
    _, app_url = role_urls
    engine = create_engine(app_url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    try:
        with sessions() as session, session.begin():
            session.add(Model(name="roles", version="1", task="t", runner="stub", input_schema={}))
        with sessions() as session, session.begin():
            job_id = submission.submit(
                session,
                submission.Submission("roles", {}, "roles-key"),
                owner="roles",
                max_attempts=1,
            ).job_id
        with sessions() as session, session.begin():
            claim = claims.claim_next(session, "roles-worker", 30)
            assert claim is not None
            assert claim.job_id == job_id
            assert claims.finish(session, claim, JobStatus.SUCCEEDED)
        with sessions() as session, session.begin():
            assert session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY)))
            ended = cancel.cancel(session, job_id, owner="roles")
            assert ended == cancel.Cancellation(JobStatus.SUCCEEDED, ended=False)
            key = keys.create(session, name="roles", owner="roles").key
            assert keys.verify(session, key).owner == "roles"  # records its use: an UPDATE
            assert keys.revoke(session, key[: keys.PREFIX_LENGTH]) is not None
            session.execute(delete(ApiKey))
            session.execute(delete(Job))
            session.execute(delete(Model))
    finally:
        engine.dispose()
