"""The worker's readiness: it consumes from the broker (and the broker answers), and PostgreSQL
answers. The checks (modules.observability.health) run on an event loop of their own, in a
daemon thread of the worker's main process; the HTTP endpoint's threads ask it."""

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any

from celery import bootsteps, signals
from celery.worker.consumer import Consumer
from sqlalchemy import text

from modules.observability.broker import broker_probe_client, ping_broker
from modules.observability.health import DependencyCheck, Readiness, readiness
from modules.persistence.engine import create_async_database_engine
from modules.settings import Settings

logger = logging.getLogger(__name__)

_consuming = threading.Event()


class ConsumingStep(bootsteps.StartStopStep):
    """A consumer bootstep that tells whether the worker consumes tasks. Celery starts it once
    the task consumer is consuming and stops it whenever the consumer stops, as it does when the
    broker connection is lost (then it starts the steps again once it has reconnected)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Consumer) -> None:
        _consuming.set()

    def stop(self, parent: Consumer) -> None:
        _consuming.clear()

    def shutdown(self, parent: Consumer) -> None:
        _consuming.clear()


@signals.worker_shutting_down.connect
def _on_shutting_down(sig: str, how: str, **_: Any) -> None:
    # A warm shutdown stops taking tasks before the consumer's steps stop.
    _consuming.clear()
    logger.info("%s shutdown on %s: no longer ready", how, sig)


class WorkerReadiness:
    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="readiness", daemon=True).start()
        # Unpooled: Celery forks pool processes from this one, and no socket may cross a fork.
        self._engine = create_async_database_engine(settings, pooled=False)
        self._broker = broker_probe_client(
            str(settings.broker_url), settings.readiness_broker_timeout_s
        )
        reuse_s = settings.readiness_cache_s
        self._checks = {
            "broker": DependencyCheck(
                self._consuming_broker if settings.readiness_broker else None,
                settings.readiness_broker_timeout_s,
                reuse_s,
            ),
            "database": DependencyCheck(
                self._database if settings.readiness_database else None,
                settings.readiness_database_timeout_s,
                reuse_s,
            ),
        }

    def check(self) -> Readiness:
        """Called from any thread; answers within the largest check timeout."""
        future: Future[Readiness] = asyncio.run_coroutine_threadsafe(
            readiness(self._checks), self._loop
        )
        return future.result()

    async def _consuming_broker(self) -> None:
        if not _consuming.is_set():
            raise ConnectionError("not consuming: connecting to the broker, or shutting down")
        await ping_broker(self._broker)

    async def _database(self) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
