"""The soak's stack as local processes: a private Redis, an S3 server (moto's), the api, the
supervised workers and the reconciler, on a private database of the PostgreSQL server of
--database-url reached through a proxy that can stall it (what SIGSTOP or `docker pause` does
to its clients)."""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from chaos.stack import SHUTDOWN_GRACE_S, soak_settings
from devtools.dev_stack import child_environment
from modules.testing import s3_server
from modules.testing.databases import libpq_url, recreate_database
from modules.testing.network import closed_port
from modules.testing.proxy import FaultyProxy

WORKER = "import sys; from services.worker.main import main; sys.exit(main())"
RECONCILER = "import sys; from services.worker.main import main; sys.exit(main(['reconcile']))"


class Service:
    """A child process in its own process group (so a kill takes its children too, as a
    container's death does), output to a file, restarted by `supervise` when it exits."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env, self.logs = name, args, env, logs
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        with (self.logs / f"{self.name}.log").open("ab") as out:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal_group(self, signum: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.process.wait()


def supervise(services: list[Service], stopping: threading.Event, delay_s: float = 0.5) -> None:
    """Restart policy `always` (Compose's `restart:`): a service that exited starts again."""
    while not stopping.wait(0.2):
        for service in services:
            with service.lock:
                if service.process is not None and service.process.poll() is not None:
                    service.signal_group(signal.SIGKILL)  # orphans of a killed group leader
                    time.sleep(delay_s)
                    service.restarts += 1
                    service.start()


FAULTS = {
    "pool": "pool process SIGKILL",
    "worker": "worker SIGKILL (main process and pool)",
    "stop": "worker SIGTERM (graceful stop)",
    "redis": "Redis SIGKILL, restarted empty",
    "api": "api SIGKILL (restarted)",
    "postgres": "PostgreSQL stalled {seconds:g} s",
}


class ProcessStack:
    restarted_by = "supervisor"
    # Set by `process_stack` as it starts them.
    api_url: str
    api_key: str
    dsn: str
    workers: list[str]
    proxy: FaultyProxy
    redis: "subprocess.Popen[bytes]"

    def __init__(self, work: Path) -> None:
        self.names = FAULTS
        self.work = work
        self.hostname = socket.gethostname()
        self.redis_port = closed_port()
        self.services: dict[str, Service] = {}

    def start_redis(self) -> None:
        # No persistence: a restart is Redis losing everything it held.
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.work)],
            stdout=(self.work / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("soak: redis-server did not start")

    # --- Faults --------------------------------------------------------------------------

    def pool_owners(self, worker: str) -> list[str]:
        return [f"{self.hostname}:{pid}" for pid in self.services[worker].children()]

    def kill_pool_process(self, owner: str) -> None:
        with suppress(ProcessLookupError):  # a poison job's process kills itself
            os.kill(int(owner.rpartition(":")[2]), signal.SIGKILL)

    def kill_worker(self, worker: str) -> None:
        service = self.services[worker]
        with service.lock:
            service.signal_group(signal.SIGKILL)

    def stop_worker(self, worker: str) -> float:
        service = self.services[worker]
        with service.lock:  # no restart until it exited
            process = service.process
            assert process is not None
            signalled = time.monotonic()
            process.terminate()  # as `docker stop` does: the main process only
            try:
                process.wait(timeout=SHUTDOWN_GRACE_S + 20)
                return time.monotonic() - signalled
            except subprocess.TimeoutExpired:
                return float("inf")

    def restart_redis(self) -> None:
        self.redis.kill()
        self.redis.wait()
        time.sleep(0.5)
        self.start_redis()

    def kill_api(self) -> None:
        self.services["api"].signal_group(signal.SIGKILL)

    def stall_postgres(self, seconds: float) -> None:
        self.proxy.stall(seconds)

    def restarts(self) -> tuple[int, int]:
        workers = sum(self.services[name].restarts for name in self.workers)
        return workers, self.services["api"].restarts


@contextmanager
def process_stack(options: argparse.Namespace, work: Path) -> Iterator[ProcessStack]:
    stack = ProcessStack(work)
    admin = make_url(options.database_url)
    db_name = f"forge_soak_{os.getpid()}"
    admin_dsn = libpq_url(admin.render_as_string(hide_password=False))
    database = recreate_database(options.database_url, db_name)
    stack.dsn = libpq_url(database)
    stack.proxy = FaultyProxy(admin.host or "127.0.0.1", admin.port or 5432)
    proxied = make_url(database).set(host="127.0.0.1", port=stack.proxy.port)
    stack.start_redis()
    s3_port = closed_port()
    api_port = closed_port()
    stack.api_url = f"http://127.0.0.1:{api_port}"
    env = child_environment(
        dict(
            FORGE_DATABASE_URL=proxied.render_as_string(hide_password=False),
            FORGE_BROKER_URL=f"redis://127.0.0.1:{stack.redis_port}/0",
            FORGE_RESULT_BACKEND_URL=f"redis://127.0.0.1:{stack.redis_port}/1",
            FORGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}",
            FORGE_S3_BUCKET="forge-soak",
            FORGE_API_PORT=str(api_port),
            FORGE_WORKER_METRICS_PORT="0",
            FORGE_RECONCILER_METRICS_PORT=str(closed_port()),
            **soak_settings(options.concurrency),
        )
    )
    python = sys.executable
    s3 = Service("s3", [python, "-m", s3_server.__name__, str(s3_port)], env, work)
    s3.start()
    for command in (["migrate", "upgrade", "head"], ["init-storage"], ["sync-models"]):
        for _ in range(50):  # init-storage waits for the S3 server to listen
            done = subprocess.run(
                [python, "-m", "services.api.main", *command], env=env, capture_output=True
            )
            if done.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"soak: {command} failed: {done.stderr.decode()[-2000:]}")
    created = subprocess.run(
        [python, "-m", "services.api.main", "keys", "create", "--name", "soak"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    stack.api_key = created.stdout.splitlines()[-1]  # printed alone on the last line
    stack.workers = [f"worker-{number}" for number in range(1, options.workers + 1)]
    services = [
        Service("api", [python, "-m", "services.api.main"], env, work),
        *(Service(name, [python, "-c", WORKER], env, work) for name in stack.workers),
        Service("reconciler", [python, "-c", RECONCILER], env, work),
    ]
    stack.services = {service.name: service for service in services}
    for service in services:
        service.start()
    stopping = threading.Event()
    supervisor = threading.Thread(target=supervise, args=(services, stopping))
    supervisor.start()
    try:
        yield stack
    finally:
        stopping.set()
        supervisor.join()
        for service in [*services, s3]:
            service.stop()
        stack.redis.kill()
        stack.redis.wait()
        stack.proxy.close()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db_name)))
