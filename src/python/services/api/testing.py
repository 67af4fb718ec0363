"""Test support: a real `forge-api` process, for tests that need the server, not the ASGI app."""

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from modules.testing.processes import (
    python_subprocess_env,
    wait_for_port,
    wait_for_reported_port,
)

# uvicorn's startup line names the port it bound (FORGE_API_PORT=0: one the kernel picks).
LISTENING = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"


class ApiProcess:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.log_path = tmp_path / "api.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.api.main"],
            env=python_subprocess_env(FORGE_API_PORT="0", **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self.port = wait_for_reported_port(self.process, self.log_path, LISTENING, 30)
            wait_for_port("127.0.0.1", self.port, 30, self.process)
        except BaseException:  # pytest.fail() too: no server outlives a failed start
            self.process.kill()
            self.process.wait(timeout=10)
            raise
        self.base_url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGTERM, as Docker sends it: a graceful shutdown. uvicorn re-raises the signal once
        it has shut down, so a clean stop ends "killed by SIGTERM" (or 0 from the supervisor)."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=15) in (0, -signal.SIGTERM)
        self._log.close()
        assert any(line["msg"].startswith("Finished server process") for line in self.log_lines())

    def log_lines(self) -> list[dict[str, Any]]:
        # "\n" only: splitlines() would also split at characters JSON strings may hold (U+2028).
        return [json.loads(line) for line in self.log_path.read_text().split("\n") if line]
