"""Forge as it runs in production, for end-to-end tests over HTTP: the api, a worker and the
reconciler as real processes, on a database set up with Forge's two roles, a private Redis (a
test may stop it) and an S3 server. The fixtures are in `stack_fixtures`."""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modules.settings import Settings
from modules.storage.s3 import make_s3_client
from modules.testing.processes import python_subprocess_env
from modules.testing.servers import PrivateRedis
from services.api.testing import ApiProcess
from services.worker.testing import WorkerProcess

# Short enough that tests of dead workers and lost messages take seconds, long enough that a
# worker on two busy cores renews its lease (every third of it) in time.
LEASE_S = 5
RECONCILE_INTERVAL_S = 0.5
SHUTDOWN_GRACE_S = 1
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


class ForgeStack:
    """The processes, started by `start()` and stopped by `stop()`; each can be stopped and
    started again by a test. `env` holds the FORGE_* settings they all get."""

    def __init__(
        self,
        directory: Path,
        *,
        database_url: str,
        redis: PrivateRedis,
        s3_endpoint_url: str,
        bucket: str,
    ) -> None:
        self.directory = directory
        self.redis = redis
        self.s3_endpoint_url = s3_endpoint_url
        self.bucket = bucket
        self.env = {
            "FORGE_DATABASE_URL": database_url,
            "FORGE_BROKER_URL": f"{redis.url}/0",
            "FORGE_RESULT_BACKEND_URL": f"{redis.url}/1",
            "FORGE_S3_ENDPOINT_URL": s3_endpoint_url,
            "FORGE_S3_BUCKET": bucket,
            "FORGE_JOB_LEASE_S": str(LEASE_S),
            "FORGE_RECONCILE_INTERVAL_S": str(RECONCILE_INTERVAL_S),
            "FORGE_WORKER_SHUTDOWN_GRACE_S": str(SHUTDOWN_GRACE_S),
            # One job at a time: a second job stays queued while the first runs.
            "FORGE_WORKER_CONCURRENCY": "1",
            "FORGE_API_WORKERS": "1",
        }
        self.api: ApiProcess | None = None
        self.worker: WorkerProcess | None = None
        self.reconciler: WorkerProcess | None = None
        self._starts: dict[str, int] = {}
        self.api_key = ""  # prepare() creates one

    # --- Lifecycle ------------------------------------------------------------------------

    def prepare(self) -> None:
        """What Compose's one-shots do before the services start: the bucket, the models and
        an API key (the database is migrated already)."""
        for command in (["init-storage"], ["sync-models"], ["keys", "create", "--name", "e2e"]):
            result = subprocess.run(
                [sys.executable, "-m", "services.api.main", *command],
                env=python_subprocess_env(**self.env),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, f"{command} failed:\n{result.stderr}"
        self.api_key = result.stdout.splitlines()[-1]  # keys create prints it last

    def start(self) -> None:
        try:
            self.start_api()
            self.start_reconciler()
            self.start_worker()
        except BaseException:  # pytest.fail() too: what did start stops again
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM to each process; SIGKILL to whatever has not exited 30 s later."""
        for worker in (self.worker, self.reconciler):
            if worker is not None and worker.process.poll() is None:
                worker.process.terminate()
                try:
                    worker.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
        if self.api is not None and self.api.process.poll() is None:
            self.api.process.terminate()
            try:
                self.api.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.api.process.kill()

    def start_api(self) -> None:
        self.api = ApiProcess(self._log_directory("api"), **self.env)

    def start_worker(self) -> None:
        self.worker = WorkerProcess(self._log_directory("worker") / "stdout", **self.env)

    def start_reconciler(self) -> None:
        self.reconciler = WorkerProcess(
            self._log_directory("reconciler") / "stdout", args=["reconcile"], **self.env
        )

    def stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.stop()
        self.worker = None

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.kill()
        self.worker = None

    def _log_directory(self, process: str) -> Path:
        """A fresh directory per start, so a restarted process's log is its own."""
        self._starts[process] = self._starts.get(process, 0) + 1
        directory = self.directory / f"{process}-{self._starts[process]}"
        directory.mkdir(parents=True)
        return directory

    # --- Talking to it --------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        assert self.api is not None
        return self.api.base_url

    def client(self) -> httpx.Client:
        auth = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.api_url, headers=auth, timeout=30)

    def submit(self, client: httpx.Client, model: str = "stub-image@1", **input: Any) -> Any:
        """POST /v1/jobs; returns the job (202 expected)."""
        response = client.post("/v1/jobs", json={"model": model, "input": input})
        assert response.status_code == 202, response.text
        return response.json()

    def wait_for_job(
        self,
        client: httpx.Client,
        job_id: str,
        until: Callable[[Any], bool] = lambda job: job["status"] in TERMINAL,
        timeout_s: float = 60,
    ) -> Any:
        """Polls GET /v1/jobs/{id} until `until(job)` (by default: a final status)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
            if until(job):
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} still {job['status']} after {timeout_s}s", pytrace=False)
            time.sleep(0.1)

    def events(self, client: httpx.Client, job_id: str) -> list[Any]:
        """Every event of the job so far, following the pages."""
        found: list[Any] = []
        while True:
            after = found[-1]["seq"] if found else 0
            page = client.get(f"/v1/jobs/{job_id}/events", params={"after": after})
            data = page.raise_for_status().json()["data"]
            if not data:
                return found
            found += data

    def stored_keys(self, prefix: str) -> list[str]:
        """The keys in the artifact bucket under `prefix`, read from the S3 server itself."""
        settings = Settings.model_validate({"s3_endpoint_url": self.s3_endpoint_url})
        listing = make_s3_client(settings).list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))
