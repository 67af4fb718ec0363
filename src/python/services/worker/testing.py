"""Test support: a real `forge-worker` process (prefork pool, its HTTP endpoint), for tests that
need the worker as it runs in production."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from modules.testing.processes import python_subprocess_env, wait_for_reported_port

CLI = "import sys; from services.worker.main import main; sys.exit(main())"
# The worker's log line naming its endpoint (FORGE_WORKER_METRICS_PORT=0: a port the kernel picks).
ENDPOINT = r"/healthz, /readyz and /metrics on http://127\.0\.0\.1:(\d+)"


class WorkerProcess:
    """Starts the worker CLI with `env` on top of this process's environment and returns once
    its /readyz answers 200. `preamble` runs first (e.g. importing a module of test tasks);
    `args` are the CLI's (`["reconcile"]`: the reconciler, whose endpoint is logged alike)."""

    def __init__(
        self, stdout: Path, preamble: str = "", args: Sequence[str] = (), **env: str
    ) -> None:
        self.env = python_subprocess_env(
            FORGE_WORKER_METRICS_PORT="0", FORGE_RECONCILER_METRICS_PORT="0", **env
        )
        self.stdout = stdout
        with stdout.open("wb") as out:
            # Its own process group: kill() reaches the pool processes too.
            self.process = subprocess.Popen(
                [sys.executable, "-c", f"{preamble}\n{CLI}", *args],
                env=self.env,
                stdout=out,
                start_new_session=True,
            )
        try:
            port = wait_for_reported_port(self.process, stdout, ENDPOINT, 30)
            self.base_url = f"http://127.0.0.1:{port}"
            self.wait_for_readyz(200, 30)
        except BaseException:  # pytest.fail() too: no process outlives a failed start
            self.kill()
            raise

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", timeout=30)

    def wait_for_readyz(self, status: int, within_s: float) -> float:
        """Asks /readyz until it answers `status`; returns how long that took."""
        started = time.monotonic()
        while self.get("/readyz").status_code != status:
            if time.monotonic() - started > within_s:
                pytest.fail(f"/readyz did not answer {status} within {within_s}s", pytrace=False)
            time.sleep(0.01)
        return time.monotonic() - started

    def stop(self) -> None:
        """SIGTERM, a warm shutdown: the worker exits 0 and every line it wrote is JSON."""
        self.process.terminate()
        try:
            exit_code = self.process.wait(timeout=30)
        finally:
            self.process.kill()  # only if it did not stop (a no-op once it exited)
        assert exit_code == 0
        self.log_lines()

    def kill(self) -> None:
        """SIGKILL to the worker and its pool processes at once, as when its host dies: no
        task is finished or handed back."""
        with suppress(ProcessLookupError):  # every process of the group has exited
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def log_lines(self) -> list[dict[str, Any]]:
        # "\n" only: splitlines() would also split at characters JSON strings may hold (U+2028).
        return [json.loads(line) for line in self.stdout.read_text().split("\n") if line]
