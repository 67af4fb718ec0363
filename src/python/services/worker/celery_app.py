"""The Forge Celery app, shared by the worker CLI and `celery -A services.worker.celery_app`.

Settings are read once, here, when the module is imported: a bad variable ends any process that
uses the app with one line per problem and exit code 78, before Celery starts.
"""

import logging
from datetime import timedelta
from typing import Any

from celery import Celery, signals

from modules.observability.logs import configure_logging
from modules.observability.multiprocess import mark_process_dead
from modules.settings import settings_or_exit
from modules.workqueue import QUEUE
from services.worker import database, jobs, tasks
from services.worker.logs import TaskContextFilter
from services.worker.readiness import ConsumingStep

logger = logging.getLogger(__name__)

settings = settings_or_exit("forge-worker")
database.configure(settings)
jobs.configure(settings)

# Naming the task modules (imported above) makes every worker of this app import them.
app = Celery("forge", include=[tasks.__name__])
app.conf.update(
    broker_url=str(settings.broker_url),
    result_backend=str(settings.result_backend_url),
    # JSON only: a message can carry data, never code (pickle would run whatever it is sent).
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Ack after the task ran, not when it was received, and give a task whose process died
    # back to the broker: a job lost with its process runs again instead of vanishing.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # The worker as a whole reserves at most concurrency x multiplier messages (the prefetch
    # count is its one consumer's, not each pool process's). With acks_late a running task's
    # message counts too, so a multiplier of 1 holds no more jobs than the pool can run at once:
    # the others stay in Redis for whichever worker frees up first.
    worker_prefetch_multiplier=1,
    # A task gets SoftTimeLimitExceeded (and can clean up) before its process is killed.
    task_soft_time_limit=settings.worker_task_soft_time_limit_s,
    task_time_limit=settings.worker_task_time_limit_s,
    # Redis hands an unacknowledged message to another worker after the visibility timeout:
    # it must outlast the longest a task may run (the hard limit) or long jobs run twice.
    broker_transport_options={"visibility_timeout": settings.worker_task_time_limit_s + 600},
    # Every message goes to Forge's queue (modules.workqueue), which the api also sends to.
    task_default_queue=QUEUE,
    # If the broker connection drops, a running job goes on: its state is in PostgreSQL under a
    # lease, and the redelivered message, which names no job, cannot run it a second time.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    # Keep retrying while Redis is not up yet (a worker may start before it).
    broker_connection_retry_on_startup=True,
    # Results are read right after a task ends; Redis keeps them in memory for a day at most.
    result_expires=timedelta(days=1),
    # Report STARTED so callers can tell a queued job from a running one.
    task_track_started=True,
    # Processes, not threads: jobs are CPU-bound, and the pool process lifecycle below (and
    # the multiprocess metrics) assume forked pool processes.
    worker_pool="prefork",
    worker_concurrency=settings.worker_concurrency,
)

# Readiness knows whether the worker consumes (services.worker.readiness).
app.steps["consumer"].add(ConsumingStep)


@signals.setup_logging.connect
def _json_logs(**_: Any) -> None:
    """Celery installs its own handlers unless a receiver takes over: JSON lines on stdout only.

    Pool processes are forked after this ran, so they inherit the same configuration.
    """
    configure_logging(
        "worker",
        settings.log_level,
        {"task": f"{TaskContextFilter.__module__}.{TaskContextFilter.__qualname__}"},
    )


@signals.worker_shutting_down.connect
def _shutting_down(**_: Any) -> None:
    """SIGTERM (warm) or SIGQUIT (cold), in the main process. Celery's own soft shutdown
    (worker_soft_shutdown_timeout) only follows a cold shutdown and then kills the pool, which
    would leave each running job to wait out its lease: Forge's grace period gives it back."""
    jobs.start_grace_period(settings.worker_shutdown_grace_s)


@signals.worker_process_init.connect
def _start_pool_process(**_: Any) -> None:
    """Runs in each pool process right after it is forked. Per-process resources (the database
    engine, clients holding sockets) are created here or on first use, never in the main
    process they were forked from. The executor is built here: loading boto3's S3 model takes
    a quarter of a second, which the process's first job would otherwise wait for."""
    jobs.executor()
    logger.info("pool process started")


@signals.worker_process_shutdown.connect
def _stop_pool_process(pid: int, **_: Any) -> None:
    """Runs in each pool process before it exits: release its resources."""
    database.dispose()
    mark_process_dead(pid)
