"""Tasks every Forge worker runs. Shared tasks: they register on the app that imports them."""

import os
from typing import Any

from celery import Task, shared_task

from modules.buildinfo import GIT_REVISION, VERSION
from services.worker import database

PING = "health.ping"


@shared_task(name=PING, bind=True)
def ping(self: Task[[], dict[str, Any]]) -> dict[str, Any]:
    """Proves the round trip client -> broker -> worker -> result backend, names who answered,
    and says whether that process reaches PostgreSQL (reported, not failed: the broker round
    trip is what this checks)."""
    return {
        "pong": True,
        "worker": self.request.hostname,
        "pid": os.getpid(),
        "version": VERSION,
        "revision": GIT_REVISION,
        "database": database.status(),
    }
