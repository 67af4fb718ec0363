"""The worker CLI where nothing can work: bad configuration, no worker to answer."""

import os
import subprocess
import sys
import time

import pytest

from modules.settings.loading import EXIT_CONFIG
from modules.testing.processes import python_subprocess_env

CLI = "import sys; from services.worker.main import main; sys.exit(main())"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        (
            "FORGE_WORKER_METRICS_PORT",
            "abc",
            "FORGE_WORKER_METRICS_PORT: Input should be a valid integer, unable to parse string as"
            " an integer",
        ),
        (
            "FORGE_WORKER_CONCURENCY",
            "4",
            "FORGE_WORKER_CONCURENCY: unknown setting; did you mean FORGE_WORKER_CONCURRENCY?",
        ),
    ],
)
def test_bad_configuration_exits_78_with_one_line_naming_it(
    variable: str, value: str, problem: str
) -> None:
    env = python_subprocess_env(**{variable: value})
    run = subprocess.run(
        [sys.executable, "-c", CLI], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == EXIT_CONFIG
    assert run.stderr.splitlines() == [f"forge-worker: invalid configuration: {problem}"]
    assert run.stdout == ""


def test_ping_without_a_worker_fails_with_one_line_within_its_timeout(
    celery_urls: tuple[str, str],
) -> None:
    broker_url, backend_url = celery_urls  # no worker consumes these
    env = python_subprocess_env(FORGE_BROKER_URL=broker_url, FORGE_RESULT_BACKEND_URL=backend_url)
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", CLI, "ping", "--timeout", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == os.EX_UNAVAILABLE
    assert run.stderr.splitlines() == [
        "forge-worker: ping: no worker answered health.ping within 2s"
    ]
    assert run.stdout == ""
    assert elapsed >= 2  # it waited for the reply; subprocess.run's timeout bounds the wait
