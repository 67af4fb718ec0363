"""What the soak needs of the stack it runs against: where the api and the database are, and
the faults, each done the way that stack's kind of deployment suffers it (a local process or a
container). `soak.py` picks, injects, records and reports; a stack only acts."""

from typing import Protocol

# Renewed every LEASE_S / 3: a PostgreSQL stall of --stall-s (4 s) plus the time since the last
# renewal stays under it, so a stall costs no attempt; a dead worker's jobs run again after it.
LEASE_S = 8
RECONCILE_INTERVAL_S = 1
SHUTDOWN_GRACE_S = 2


def soak_settings(concurrency: int) -> dict[str, str]:
    """The FORGE_* settings every stack's services get, on top of its own (hosts, ports)."""
    return {
        "FORGE_API_WORKERS": "1",
        "FORGE_WORKER_CONCURRENCY": str(concurrency),
        "FORGE_JOB_LEASE_S": str(LEASE_S),
        "FORGE_RECONCILE_INTERVAL_S": str(RECONCILE_INTERVAL_S),
        "FORGE_WORKER_SHUTDOWN_GRACE_S": str(SHUTDOWN_GRACE_S),
        "FORGE_LOG_LEVEL": "INFO",
        # Every planned job may be queued at once.
        "FORGE_JOB_MAX_QUEUED_PER_OWNER": "1000000",
    }


class Stack(Protocol):
    """A running stack. A worker is named by a string of the stack's choosing; a pool process by
    the `lease_owner` its running job carries (`<hostname>:<pid>`)."""

    api_url: str
    api_key: str
    dsn: str  # libpq URL of the stack's database, read directly (never stalled) for the report
    workers: list[str]
    # Fault names: a name with "SIGKILL" counts as a kill of the jobs running on its target.
    names: dict[str, str]
    restarted_by: str  # what brings a killed worker or api back, for the report

    def pool_owners(self, worker: str) -> list[str]:
        """The lease owners of the worker's live pool processes (busy or not)."""
        ...

    def kill_pool_process(self, owner: str) -> None: ...

    def kill_worker(self, worker: str) -> None:
        """SIGKILL of the worker and its pool; it comes back as after a crash."""
        ...

    def stop_worker(self, worker: str) -> float:
        """A graceful stop (SIGTERM to the main process), then a start: seconds from the signal
        to its exit, `inf` when it did not exit in time."""
        ...

    def restart_redis(self) -> None:
        """Redis killed and started again without the data it held."""
        ...

    def kill_api(self) -> None: ...

    def stall_postgres(self, seconds: float) -> None:
        """PostgreSQL answers nothing for `seconds` (connections stay open); blocks meanwhile."""
        ...

    def restarts(self) -> tuple[int, int]:
        """Restarts of workers and of the api so far."""
        ...
