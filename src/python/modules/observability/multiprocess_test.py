"""Multiprocess metrics in fresh interpreters: prometheus-client chooses its storage when it is
first imported, so each case needs a process of its own."""

import subprocess
import sys

from modules.testing.processes import python_subprocess_env

MULTIPROCESS = """
import os
from modules.observability.multiprocess import remove_multiprocess_dir, use_multiprocess_dir
directory = use_multiprocess_dir("metrics-test")
try:
    from prometheus_client import Counter
    from modules.observability.metrics import render_latest, set_build_info
    Counter("forge_test_events_total", "Events.").inc(3)
    set_build_info("test")
    print(sorted(os.listdir(directory)))
    print(render_latest()[0].decode())
finally:
    remove_multiprocess_dir(directory)
"""

TOO_LATE = """
import prometheus_client
from modules.observability.multiprocess import use_multiprocess_dir
use_multiprocess_dir("metrics-test")
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=python_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_metrics_created_after_use_multiprocess_dir_are_shared_through_files() -> None:
    result = run(MULTIPROCESS)
    assert result.returncode == 0, result.stderr
    files, exposition = result.stdout.split("\n", 1)
    assert "'counter_" in files
    assert "'gauge_max_" in files
    assert "forge_test_events_total 3.0" in exposition
    assert 'forge_build_info{revision="unknown",service="test",version="' in exposition


def test_use_multiprocess_dir_after_prometheus_client_is_refused() -> None:
    result = run(TOO_LATE)
    assert result.returncode == 1
    assert "must run before prometheus_client is imported" in result.stderr
