"""The S3 fixture; a package's conftest.py imports it when its tests need object storage."""

import subprocess
import sys
from collections.abc import Iterator

import pytest

from modules.testing import s3_server
from modules.testing.processes import python_subprocess_env, wait_for_reported_port


@pytest.fixture(scope="session")
def s3_endpoint_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3 server over HTTP (moto's, in its own process) for the whole session."""
    output = tmp_path_factory.mktemp("s3") / "output"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", s3_server.__name__],
            env=python_subprocess_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        port = wait_for_reported_port(process, output, s3_server.READY_PATTERN, 20)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
