import os
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from pydantic import PostgresDsn
from sqlalchemy import make_url

from modules.settings import Settings
from modules.testing.network import closed_port
from modules.testing.roles import database_with_roles
from services.worker import database
from services.worker.celery_app import app, settings
from services.worker.main import main
from services.worker.tasks import PING


@pytest.fixture(scope="module")
def worker_app(celery_urls: tuple[str, str], postgres_admin_url: str) -> Iterator[Celery]:
    """The worker's app, on this test process's Redis databases and the test PostgreSQL,
    with a worker in a thread."""
    broker_url, backend_url = celery_urls
    # The app read the default URLs when it was imported and has not connected yet.
    app.conf.update(broker_url=broker_url, result_backend=backend_url)
    database.configure(settings.model_copy(update={"database_url": postgres_admin_url}))
    with start_worker(app, perform_ping_check=False):
        yield app
    database.configure(settings)


def test_ping_round_trips_through_the_broker(worker_app: Celery) -> None:
    result = worker_app.send_task(PING)
    reply = result.get(timeout=20)
    assert result.state == "SUCCESS"
    assert reply["pong"] is True
    assert isinstance(reply["worker"], str)
    assert {"pid", "version", "revision"} <= reply.keys()
    assert reply["database"] == "ok"


def test_database_status_names_the_problem() -> None:
    url = PostgresDsn(f"postgresql+psycopg://forge@127.0.0.1:{closed_port()}/forge")
    database.configure(Settings.model_validate({"database_url": url}))
    try:
        status = database.status()
    finally:
        database.configure(settings)
    assert status.startswith("unavailable: ")
    assert "Connection refused" in status


def test_cli_ping_fails_when_the_worker_cannot_reach_its_database(
    worker_app: Celery, postgres_admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker started with the wrong FORGE_DATABASE_URL answers pings: say so, exit non-zero."""
    url = PostgresDsn(f"postgresql+psycopg://forge@127.0.0.1:{closed_port()}/forge")
    database.configure(Settings.model_validate({"database_url": url}))  # the threaded worker's
    try:
        code = main(["ping", "--timeout", "20"])
    finally:
        database.configure(settings.model_copy(update={"database_url": postgres_admin_url}))
    output = capsys.readouterr()
    assert code == os.EX_UNAVAILABLE
    assert '"pong": true' in output.out
    (line,) = output.err.splitlines()
    assert line.startswith(
        "forge-worker: ping: the worker answered, but its database is unavailable"
    )


def test_database_status_is_ok_with_the_application_role(
    postgres_admin_url: str, database_url: str
) -> None:
    """The worker connects as the role that may only read and write rows (see roles_test.py)."""
    name = f"{make_url(database_url).database}_worker_roles"
    with database_with_roles(postgres_admin_url, name) as (_, app_url):
        database.configure(Settings.model_validate({"database_url": app_url}))
        try:
            assert database.status() == "ok"
        finally:
            database.configure(settings.model_copy(update={"database_url": postgres_admin_url}))
