"""Helpers for tests that start real processes (servers, workers) and wait for them."""

import os
import socket
import subprocess
import sys
import time

import pytest


def reserve_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
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
