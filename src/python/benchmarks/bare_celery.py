"""Baseline for the jobs benchmark: a bare Celery app (its defaults, JSON messages) whose task
does nothing, on the Redis the benchmark names in BENCH_CELERY_BROKER_URL and
BENCH_CELERY_RESULT_URL. Started as `celery -A benchmarks.bare_celery worker`."""

import os

from celery import Celery

app = Celery(
    "bare",
    broker=os.environ["BENCH_CELERY_BROKER_URL"],
    backend=os.environ["BENCH_CELERY_RESULT_URL"],
    set_as_current=False,
)
app.conf.update(worker_pool="prefork", worker_hijack_root_logger=False)


@app.task(name="bare.noop")
def noop() -> None:
    return None
