"""The states a job and its steps move through (the database enforces the same sets)."""

from collections.abc import Iterable
from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELING = "canceling"
    CANCELED = "canceled"


class StepStatus(StrEnum):
    """A step is canceled at once: unlike a job, it has no `canceling` state."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# Jobs that still need the platform's attention (the partial index `ix_jobs_active` covers them).
ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELING)
# Jobs that ended: nothing moves them again.
FINAL_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


def sql_list(statuses: Iterable[StrEnum]) -> str:
    """The statuses as SQL string literals, comma-separated: for `status IN (...)` in an index
    predicate or a statement written as SQL, where the planner must see the values."""
    return ", ".join(f"'{status}'" for status in statuses)
