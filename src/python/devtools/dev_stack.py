"""`make dev`: the api, the worker and the reconciler as local processes, against the local
PostgreSQL and Redis and an S3 server (moto's) started here, all with the settings of one file
(dev.env).

In order: create the database if it is missing, start the S3 server, migrate to head, sync the
models, create the bucket, then start the api, the reconciler and the worker. Their JSON log lines are interleaved on stdout
(the S3 server's plain lines are wrapped as JSON too). Ctrl-C (or SIGTERM) stops everything;
if one process ends by itself, the others are stopped and the exit status is 1.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import sql
from sqlalchemy import make_url

from modules.testing import s3_server
from modules.testing.databases import libpq_url

PROGRAM = "dev"
WORKER = "import sys; from services.worker.main import main; sys.exit(main())"
STOP_TIMEOUT_S = 15


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and `#` comments are skipped. No quoting or expansion."""
    settings = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise SystemExit(f"{PROGRAM}: {path}:{number}: expected KEY=VALUE, got {line!r}")
        settings[key.strip()] = value.strip()
    return settings


def child_environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment with every FORGE_* variable replaced by the file's: the file
    is the one source of settings, whatever the shell exported."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("FORGE_")}
    return {**inherited, "PYTHONPATH": os.pathsep.join(sys.path), **settings}


def ensure_database(database_url: str) -> None:
    """Create the database of `database_url` unless it exists (the role needs CREATEDB)."""
    url = make_url(database_url)
    if not url.database:
        raise SystemExit(f"{PROGRAM}: FORGE_DATABASE_URL names no database")
    server = libpq_url(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
                log("dev", f"created database {url.database}")
    except psycopg.Error as error:
        where = url.render_as_string(hide_password=True)
        reason = " ".join(str(error).split())
        raise SystemExit(f"{PROGRAM}: cannot prepare the database {where}: {reason}") from None


_output_lock = threading.Lock()


def log(service: str, message: str) -> None:
    """One JSON line on stdout, shaped like the services' own (ts, level, service, msg)."""
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = {"ts": timestamp, "level": "INFO", "logger": PROGRAM, "service": service, "msg": message}
    _write(json.dumps(line))


def _write(line: str) -> None:
    with _output_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _relay(service: str, stream: IO[bytes]) -> None:
    """Copies a child's output to stdout line by line; lines that are not JSON are wrapped."""
    for raw in stream:
        line = raw.decode(errors="replace").rstrip("\n")
        try:
            json.loads(line)
        except ValueError:
            log(service, line)
        else:
            _write(line)


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def start(self, service: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        # Its own session: Ctrl-C reaches only this supervisor, which stops the children in
        # order (a second SIGINT would turn Celery's warm shutdown into a cold one).
        process = subprocess.Popen(
            [sys.executable, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        threading.Thread(target=_relay, args=(service, process.stdout), daemon=True).start()
        self.processes[service] = process
        return process

    def run(self, service: str, args: Sequence[str]) -> None:
        """A one-shot (migrate, sync-models, init-storage): it must exit 0."""
        code = self.start(service, args).wait()
        del self.processes[service]
        if code != 0:
            raise SystemExit(f"{PROGRAM}: {service} failed with exit status {code}")

    def stop(self) -> None:
        """SIGTERM to each process, newest first; SIGKILL whatever is left after the timeout."""
        self.stopping.set()
        for process in reversed(self.processes.values()):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def wait_for_exit(self) -> str | None:
        """Blocks until a process exits or a stop is requested; the exited service's name."""
        while not self.stopping.wait(0.2):
            for service, process in self.processes.items():
                if process.poll() is not None:
                    return service
        return None


def wait_until_ready(readyz: str, stack: Stack, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stack.stopping.is_set():
        try:
            if httpx.get(readyz, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    parser.add_argument("env_file", type=Path, help="the settings, KEY=VALUE lines (dev.env)")
    args = parser.parse_args(argv)
    settings = read_env_file(args.env_file)
    env = child_environment(settings)
    for required in ("FORGE_DATABASE_URL", "FORGE_S3_ENDPOINT_URL"):
        if required not in settings:
            raise SystemExit(f"{PROGRAM}: {args.env_file} must set {required}")

    stack = Stack(env)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stack.stopping.set())
    try:
        ensure_database(settings["FORGE_DATABASE_URL"])
        s3_port = str(urlsplit(settings["FORGE_S3_ENDPOINT_URL"]).port or 80)
        stack.start("s3", ["-m", s3_server.__name__, s3_port])
        stack.run("migrate", ["-m", "services.api.main", "migrate", "upgrade", "head"])
        stack.run("sync-models", ["-m", "services.api.main", "sync-models"])
        stack.run("init-storage", ["-m", "services.api.main", "init-storage"])
        stack.start("api", ["-m", "services.api.main"])
        stack.start("reconciler", ["-c", WORKER, "reconcile"])
        stack.start("worker", ["-c", WORKER])
        host = settings.get("FORGE_API_HOST", "127.0.0.1")
        api = f"http://{host}:{settings.get('FORGE_API_PORT', '8000')}"
        if wait_until_ready(f"{api}/readyz", stack):
            log("dev", f"ready: api on {api} (/docs, /readyz); Ctrl-C stops everything")
        exited = stack.wait_for_exit()
    finally:
        stack.stop()
    if exited is not None:
        code = stack.processes[exited].returncode
        sys.stderr.write(f"{PROGRAM}: {exited} exited with status {code}; stopped the others\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
