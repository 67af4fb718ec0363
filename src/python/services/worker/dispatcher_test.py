"""The dispatcher against PostgreSQL and Redis: new jobs' messages as their inserts commit."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
from pydantic import PostgresDsn, RedisDsn
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from modules.catalog.sync import sync
from modules.jobs import submission
from modules.settings import Settings
from modules.testing.isolation import execution_slot
from modules.testing.network import silent_listener
from modules.workqueue import QUEUE, TokenQueue, make_celery
from services.worker.dispatcher import APPLICATION_NAME, Dispatcher, State

INTERVAL_S = 0.2
# The acting dispatcher's connection, in this test process's database: the one holding an
# advisory lock (nothing else here takes one).
_HOLDER = (
    "datname = current_database() AND application_name = :name AND pid IN "
    "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
)
WITHIN_S = 10.0


@pytest.fixture()
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE jobs CASCADE"))
    with Session(engine) as session, session.begin():
        sync(session)
    yield engine
    engine.dispose()


@pytest.fixture()
def broker_url(redis_base_url: str) -> str:
    url = f"{redis_base_url}/{8 + execution_slot() % 8}"
    redis.Redis.from_url(url).flushdb()
    return url


def _settings(database_url: str, broker_url: str) -> Settings:
    return Settings(
        database_url=PostgresDsn(database_url),
        broker_url=RedisDsn(broker_url),
        reconcile_interval_s=INTERVAL_S,
    )


@contextmanager
def _running(settings: Settings) -> Iterator[Dispatcher]:
    app = make_celery(
        "test",
        str(settings.broker_url),
        broker_transport_options={"socket_connect_timeout": 1, "socket_timeout": 1},
    )
    dispatcher = Dispatcher(settings, TokenQueue(app))
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield dispatcher
    finally:
        stop.set()
        thread.join(timeout=WITHIN_S)
        assert not thread.is_alive()
        app.close()


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WITHIN_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WITHIN_S} s: {what}"
        time.sleep(0.02)


def _submit(sessions: sessionmaker[Session], count: int = 1, *, commit: bool = True) -> None:
    with sessions() as session:
        for _ in range(count):
            body = submission.Submission("echo@1", {"message": "hi"})
            submission.submit(session, body, owner="tester", max_attempts=3)
        if commit:
            session.commit()


def _messages(broker_url: str) -> int:
    return int(redis.Redis.from_url(broker_url).llen(QUEUE))


def test_every_committed_job_gets_one_message_and_a_rolled_back_one_none(
    database_url: str, broker_url: str, engine: Engine
) -> None:
    sessions = sessionmaker(engine)
    with _running(_settings(database_url, broker_url)) as dispatcher:
        _until(lambda: dispatcher.state is State.LISTENING, "listening")
        _submit(sessions)
        _submit(sessions, 5)  # one transaction, five notifications
        _submit(sessions, 2, commit=False)
        _until(lambda: _messages(broker_url) == 6, "six messages")
        time.sleep(3 * INTERVAL_S)  # nothing more comes
        assert _messages(broker_url) == 6


def test_one_dispatcher_sends_and_another_takes_over_when_its_connection_is_killed(
    database_url: str, broker_url: str, engine: Engine
) -> None:
    sessions = sessionmaker(engine)
    settings = _settings(database_url, broker_url)
    with _running(settings) as first, _running(settings) as second:
        both = (first, second)
        _until(
            lambda: {d.state for d in both} == {State.LISTENING, State.STANDING_BY},
            "one listening, one standing by",
        )
        _submit(sessions, 2)
        _until(lambda: _messages(broker_url) == 2, "two messages")
        with engine.begin() as connection:  # what a crashed reconciler leaves: no connection
            ((killed, terminated),) = connection.execute(
                text(
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE {_HOLDER}"
                ),
                {"name": APPLICATION_NAME},
            ).all()
        assert terminated
        # Not a dispatcher's state: the killed one says LISTENING until it notices.
        _until(
            lambda: _listening_holder(engine) not in (None, killed),
            "another connection holding the lock and listening",
        )
        _submit(sessions)
        _until(lambda: _messages(broker_url) == 3, "a third message")
        time.sleep(3 * INTERVAL_S)
        assert _messages(broker_url) == 3


def test_a_hanging_redis_costs_the_batch_its_messages_not_the_dispatcher(
    database_url: str, broker_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = sessionmaker(engine)
    with silent_listener() as port, caplog.at_level(logging.WARNING):
        settings = _settings(database_url, f"redis://127.0.0.1:{port}/0")
        with _running(settings) as dispatcher:
            _until(lambda: dispatcher.state is State.LISTENING, "listening")
            _submit(sessions, 3)
            _until(
                lambda: "3 jobs queued without a message" in caplog.text,
                "the failed send logged",
            )
            assert dispatcher.state is State.LISTENING


def _listening_holder(engine: Engine) -> int | None:
    """The backend pid of the dispatcher connection that holds the lock and has run LISTEN
    (its last statement is no longer the lock's)."""
    with engine.connect() as connection:
        pid: int | None = connection.execute(
            text(
                f"SELECT pid FROM pg_stat_activity WHERE {_HOLDER} "
                "AND query NOT LIKE '%pg_try_advisory_lock%'"
            ),
            {"name": APPLICATION_NAME},
        ).scalar_one_or_none()
        return pid
