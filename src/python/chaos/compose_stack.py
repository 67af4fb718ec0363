"""The soak's stack as the Compose stack (compose/docker-compose.yml), run as its own project
with soak settings and free host ports, and faults done to containers: `docker kill`, a pool
process killed inside its container, `docker pause`, `docker stop`. Every `up` and `down` holds
/tmp/forge-compose.lock, which other Compose runs on a shared machine take as well."""

import argparse
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import make_url

from chaos.stack import LEASE_S, RECONCILE_INTERVAL_S, soak_settings
from devtools.dev_stack import read_env_file
from modules.testing.databases import libpq_url
from modules.testing.network import closed_port

LOCK = ["flock", "/tmp/forge-compose.lock"]
# Each `docker` call goes through the engine's API, which a busy 2-core machine answers slowly;
# podman's (behind its Docker API shim) drops connections now and then under load, as
# scripts/compose-up says: those calls are retried.
DOCKER_TIMEOUT_S = 120
DOCKER_ATTEMPTS = 8
PAUSE_ATTEMPTS = 5
TRANSIENT = "Cannot connect to the Docker daemon|read /proc/[0-9]+/cgroup: no such process"
ALREADY = "state improper|already paused|not paused|not running"


FAULTS = {
    "pool": "pool process SIGKILL (in its worker container)",
    "worker": "worker container SIGKILL (docker kill)",
    "stop": "worker container docker stop (SIGTERM, graceful)",
    "redis": "Redis container SIGKILL, restarted with its data flushed",
    "api": "api container SIGKILL (docker kill, started again)",
    "postgres": "PostgreSQL paused {seconds:g} s (docker pause)",
}


class ComposeStack:
    # A container stopped by `docker kill` stays down: `restart: unless-stopped` counts it as
    # stopped by hand, in Docker and in podman 4.3 alike (checked: a `docker kill` left the
    # container exited, a SIGKILL of its process from the host had the policy restart it). So
    # the soak starts it again right away, as its supervisor does for processes.
    restarted_by = "docker start"
    api_url: str
    api_key: str
    dsn: str
    workers: list[str]  # container ids

    def __init__(self, compose: list[str], env: dict[str, str]) -> None:
        self.names = FAULTS
        self.compose, self.env = compose, env
        self.hostnames: dict[str, str] = {}
        self.started: dict[str, float] = {}  # container: monotonic time of the soak's start
        self.worker_restarts = self.api_restarts = 0

    def docker(self, *args: str, check: bool = True, out: IO[str] | None = None) -> str:
        """Its stdout (or into `out`)."""
        for attempt in range(DOCKER_ATTEMPTS):
            time.sleep(attempt and 1)
            done = subprocess.run(
                args,
                env=self.env,
                stdout=out or subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                timeout=DOCKER_TIMEOUT_S,
            )
            if done.returncode == 0 or not re.search(TRANSIENT, done.stderr):
                break
        # A retried kill, pause or unpause whose first request went through finds it done.
        done_before = attempt > 0 and re.search(ALREADY, done.stderr)
        if check and done.returncode != 0 and not done_before:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()[-2000:]}")
        return done.stdout or ""

    def container(self, service: str) -> str:
        return self.docker(*self.compose, "ps", "--quiet", service).split()[0]

    def start(self, container: str) -> None:
        """`docker start`, for a container that exited: `docker compose start worker` would
        start every stopped replica, this one only."""
        self.docker("docker", "start", container)
        self.started[container] = time.monotonic()

    # --- Faults --------------------------------------------------------------------------

    def hostname(self, container: str) -> str:
        if container not in self.hostnames:
            found = self.docker("docker", "inspect", "--format", "{{.Config.Hostname}}", container)
            self.hostnames[container] = found.strip()
        return self.hostnames[container]

    def pool_owners(self, worker: str) -> list[str]:
        # A started container's pids begin again in a new namespace: its pool processes may
        # carry the owners of its killed ones, whose jobs stay `running` until their leases
        # lapse and the reconciler takes them back. None is offered until then.
        if (
            time.monotonic() - self.started.get(worker, float("-inf"))
            < LEASE_S + 2 * RECONCILE_INTERVAL_S
        ):
            return []
        # Celery's main process is the container's PID 1 (the image's exec-form entrypoint);
        # its children are the pool, with the pids their leases name.
        children = self.docker(
            "docker", "exec", worker, "cat", "/proc/1/task/1/children", check=False
        )
        return [f"{self.hostname(worker)}:{pid}" for pid in children.split()]

    def kill_pool_process(self, owner: str) -> None:
        hostname, _, pid = owner.rpartition(":")
        worker = next(w for w in self.workers if self.hostname(w) == hostname)
        # Gone already is no error: a poison job's process kills itself, and Celery replaces
        # a pool process that exited.
        self.docker("docker", "exec", worker, "sh", "-c", f"kill -KILL {int(pid)} || true")

    def kill_worker(self, worker: str) -> None:
        self.docker("docker", "kill", "--signal", "KILL", worker)
        self.start(worker)
        self.worker_restarts += 1

    def stop_worker(self, worker: str) -> float:
        # `docker stop` sends SIGTERM to PID 1 and waits the service's stop_grace_period (40 s,
        # far above the 2 s shutdown grace) before a SIGKILL; it returns once the container
        # exited.
        signalled = time.monotonic()
        self.docker("docker", "stop", worker)
        stopped_s = time.monotonic() - signalled
        self.start(worker)
        self.worker_restarts += 1
        return stopped_s

    def restart_redis(self) -> None:
        redis = self.container("redis")
        # Emptied first: with the append-only file on its volume, a restart alone loses nothing.
        self.docker(*self.compose, "exec", "-T", "redis", "redis-cli", "FLUSHALL")
        self.docker("docker", "kill", "--signal", "KILL", redis)
        self.start(redis)

    def kill_api(self) -> None:
        api = self.container("api")
        self.docker("docker", "kill", "--signal", "KILL", api)
        self.start(api)
        self.api_restarts += 1

    def stall_postgres(self, seconds: float) -> None:
        postgres = self.container("postgres")
        # runc's freezer (cgroup v1 here) gives up when a process does not freeze in time, as
        # happens on a busy machine ("unable to freeze"): the container runs on, and a second
        # try freezes it.
        for attempt in range(1, PAUSE_ATTEMPTS + 1):
            try:
                self.docker("docker", "pause", postgres)
                break
            except RuntimeError:
                if attempt == PAUSE_ATTEMPTS:
                    raise
                time.sleep(0.5)
        try:
            time.sleep(seconds)
        finally:
            self.docker("docker", "unpause", postgres)

    def restarts(self) -> tuple[int, int]:
        return self.worker_restarts, self.api_restarts


def stack_settings(example: Path, settings: dict[str, str]) -> str:
    """.env.example with `settings` in place of its values (and appended where it has none)."""
    lines, left = [], dict(settings)
    for line in example.read_text().splitlines():
        name = line.partition("=")[0]
        if not line.startswith("#") and name in left:
            line = f"{name}={left.pop(name)}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in left.items()]
    return "\n".join(lines) + "\n"


@contextmanager
def compose_stack(options: argparse.Namespace, work: Path) -> Iterator[ComposeStack]:
    repo = Path(options.repo).resolve()
    api_port, minio_port, postgres_port = closed_port(), closed_port(), closed_port()
    env_file = work / "stack.env"
    env_file.write_text(
        stack_settings(
            repo / ".env.example",
            {
                **soak_settings(options.concurrency),
                # Presigned URLs name the published port, which the api must know at start.
                "FORGE_S3_PUBLIC_ENDPOINT_URL": f"http://127.0.0.1:{minio_port}",
            },
        )
    )
    # The soak reads the database directly for its report; the developer stack does not publish
    # PostgreSQL, so only this project does. Workers: as many replicas as --workers. On a busy
    # machine a probe (a Python process) takes longer than its 3 s and times out, and
    # scripts/compose-up gives up on an unhealthy service: here probes have longer and more tries.
    probes = "    healthcheck: {timeout: 10s, retries: 20}\n"
    override = work / "chaos.override.yml"
    override.write_text(
        "services:\n"
        "  postgres:\n"
        f'    ports: ["127.0.0.1:{postgres_port}:5432"]\n'
        f"  api:\n{probes}"
        f"  reconciler:\n{probes}"
        "  worker:\n"
        f"    deploy: {{replicas: {options.workers}}}\n{probes}"
    )
    files = ["-f", str(repo / "compose/docker-compose.yml"), "-f", str(override)]
    project = ["--project-name", options.compose_project, "--env-file", str(env_file), *files]
    compose = ["docker", "compose", *project]
    env = {
        **os.environ,
        "STACK_ENV_FILE": str(env_file),
        "API_PUBLISHED_PORT": str(api_port),
        "MINIO_PUBLISHED_PORT": str(minio_port),
        "WORKER_METRICS_PUBLISHED_PORT": "0",  # any free port, one per replica
    }
    stack = ComposeStack(compose, env)
    down = [*LOCK, *compose, "down", "--volumes", "--remove-orphans"]
    subprocess.run(down, env=env, capture_output=True)  # what a killed earlier run left
    try:
        with (work / "compose-up.log").open("w") as log:
            # `up`, run again on the Docker API's transient failures, until every service is ready.
            up = [*LOCK, str(repo / "scripts/compose-up"), *project]
            if subprocess.run(up, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"soak: the Compose stack did not start (see {log.name})")
        stack.workers = stack.docker(*compose, "ps", "--quiet", "worker").split()
        stack.api_url = f"http://127.0.0.1:{api_port}"
        url = make_url(read_env_file(env_file)["FORGE_DATABASE_URL"])
        stack.dsn = libpq_url(
            url.set(host="127.0.0.1", port=postgres_port).render_as_string(hide_password=False)
        )
        # The development key the stack's dev-key one-shot wrote (`make dev-key`).
        key = stack.docker(
            *compose, "exec", "-T", "api", "cat", "/var/lib/forge/keys/development.key"
        )
        stack.api_key = key.strip()
        yield stack
    finally:
        with (work / "compose.log").open("w") as log:
            stack.docker(*compose, "logs", "--no-color", check=False, out=log)
        # An interrupted run may leave PostgreSQL paused: unpaused, so that `down` stops it.
        subprocess.run([*compose, "unpause", "postgres"], env=env, capture_output=True)
        subprocess.run(down, env=env, capture_output=True)
