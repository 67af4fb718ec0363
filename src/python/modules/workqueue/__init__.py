"""The work queue: Redis carries "run a job" messages, PostgreSQL says which job.

A message names no job. A worker that takes one claims the best queued job in PostgreSQL (or
finds none and does nothing), so a duplicate, redelivered or stray message is harmless, and
messages Redis lost are made up by the reconciler, which sends one per queued job that has none
waiting (modules.jobs.reconcile).
"""

from typing import Any

from celery import Celery

QUEUE = "forge"
RUN_JOB = "jobs.run"


def make_celery(name: str, broker_url: str, **config: object) -> Celery:
    """A Celery app speaking Forge's message format: JSON only (a message can carry data, never
    code), every message on Forge's queue."""
    app = Celery(name, broker=broker_url, set_as_current=False)
    defaults: dict[str, object] = {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        "task_ignore_result": True,
    }
    app.conf.update({**defaults, **config})
    return app


class TokenQueue:
    """Sends run-job messages and counts those waiting (modules.jobs.reconcile.WorkQueue)."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def send(self, count: int = 1) -> None:
        # retry=False: a caller that cannot reach Redis learns it at once; the reconciler sends
        # the message later.
        with self._app.producer_or_acquire() as producer:
            for _ in range(count):
                self._app.send_task(RUN_JOB, queue=QUEUE, producer=producer, retry=False)

    def waiting(self) -> int:
        with self._app.connection_for_write() as connection:
            # Declaring an existing queue is harmless, and an absent one has no messages.
            channel: Any = connection.default_channel  # kombu's typing stops at StdChannel
            return int(channel.queue_declare(QUEUE).message_count)
