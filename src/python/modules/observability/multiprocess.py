"""prometheus-client's multiprocess mode, for services that run several processes (uvicorn
workers, Celery's prefork pool): each process writes its samples to files in one directory and a
scrape adds them up.

prometheus-client chooses between in-memory and file storage once, when it is imported, from
PROMETHEUS_MULTIPROC_DIR. So this module does not import it at load time: an entry point calls
`use_multiprocess_dir()` before anything imports prometheus-client, and child processes inherit
the variable.
"""

import os
import shutil
import sys
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess_dir(program: str) -> str:
    """Point prometheus-client at a fresh, private sample directory for this process tree and
    return it (the caller removes it with `remove_multiprocess_dir` at exit)."""
    if "prometheus_client" in sys.modules:
        # Metrics would silently stay per process: a scrape would see one process's samples.
        raise RuntimeError("use_multiprocess_dir() must run before prometheus_client is imported")
    directory = tempfile.mkdtemp(prefix=f"{program}-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory


def remove_multiprocess_dir(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def mark_process_dead(pid: int) -> None:
    """Drop a finished child's live gauges (its counters stay, as they should)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess  # the storage was chosen long before

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
