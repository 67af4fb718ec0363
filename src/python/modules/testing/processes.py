"""Helpers for tests that start real processes (servers, workers) and wait for them."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def wait_for_reported_port(
    process: subprocess.Popen[bytes], output: Path, pattern: str, timeout_s: float
) -> int:
    """The port a server started on port 0 reports in its `output` file: the first match of
    `pattern`'s one group. The server binds before it reports, so the port is its own: no
    other process can take it in between (as with a port picked here, released and rebound)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if match := re.search(pattern, output.read_text(errors="replace")):
            return int(match.group(1))
        if process.poll() is not None:
            pytest.fail(
                f"process {process.args!r} exited with {process.returncode}:\n"
                f"{output.read_text(errors='replace')}",
                pytrace=False,
            )
        time.sleep(0.05)
    pytest.fail(f"{process.args!r} reported no port within {timeout_s}s", pytrace=False)


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    """Until `port` accepts connections: a server may report its port before it listens (e.g.
    uvicorn's supervisor binds the socket that its worker processes then listen on)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"process {process.args!r} exited with {process.returncode}", pytrace=False)
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listened on {host}:{port} within {timeout_s}s", pytrace=False)


def python_subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python that must import what this test process imports."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **extra}
