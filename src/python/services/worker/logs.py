"""Task context on log lines: every record logged while a task runs names that task."""

import logging

from celery._state import get_current_worker_task


class TaskContextFilter(logging.Filter):
    """Stamps the running task's id and name on records logged in a pool process while it runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = get_current_worker_task()
        if task is not None:
            record.task_id = task.request.id
            record.task_name = task.name
        return True
