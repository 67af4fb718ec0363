"""Test support: a real `forge-api` process, for tests that need the server, not the ASGI app."""

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from modules.testing.processes import python_subprocess_env, reserve_free_port, wait_for_port


class ApiProcess:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = reserve_free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "api.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.api.main"],
            env=python_subprocess_env(FORGE_API_PORT=str(self.port), **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port("127.0.0.1", self.port, 30, self.process)
        except BaseException:
            sys.stderr.write(self.log_path.read_text())  # shown with the failure
            raise

    def stop(self) -> None:
        """SIGTERM, as Docker sends it: a graceful shutdown. uvicorn re-raises the signal once
        it has shut down, so a clean stop ends "killed by SIGTERM" (or 0 from the supervisor)."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=15) in (0, -signal.SIGTERM)
        self._log.close()
        assert any(line["msg"].startswith("Finished server process") for line in self.log_lines())

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]
