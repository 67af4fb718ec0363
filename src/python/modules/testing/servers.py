"""Private PostgreSQL and Redis servers for failure tests: a test may stop, kill or freeze them
(SIGSTOP: the server accepts connections in the kernel and answers nothing, as a hung host
does) without touching the shared services other tests use."""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest
import redis

from modules.testing.network import closed_port

# Debian's layout; `pg_config --bindir` names it elsewhere.
_POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class PrivateServer(ABC):
    """A server process the test controls. Signals reach the process and all its descendants
    (PostgreSQL forks a process per connection, each in a session of its own)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0  # chosen by the first start()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    @abstractmethod
    def url(self) -> str:
        """How a client reaches it."""

    @abstractmethod
    def _command(self) -> tuple[list[str], str | None]:
        """The command line, and the user to run it as (None: this process's user)."""

    @abstractmethod
    def _answers(self) -> bool:
        """Whether the server answers a client now."""

    def start(self, timeout_s: float = 30) -> None:
        """Start the server; again after `kill()`, on the same port. The first start picks a
        free port, and picks another if some other process binds it first."""
        attempts = 3 if self.port == 0 else 1
        for _ in range(attempts):
            if attempts > 1:
                self.port = closed_port()
            if self._launch(timeout_s):
                return
        pytest.fail(f"private {self.name} did not start on port {self.port}", pytrace=False)

    def _launch(self, timeout_s: float) -> bool:
        """Whether the server answers within `timeout_s` (False if it exited)."""
        command, user = self._command()
        self._process = subprocess.Popen(
            command, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                return False
            time.sleep(0.05)
        return True

    def freeze(self) -> None:
        """SIGSTOP every process of the server: connections are accepted, nothing answers."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as when the host or container dies; `start()` brings it back."""
        if self._process is not None and self._process.poll() is None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGKILL)
            self._process.wait(timeout=10)

    def _signal(self, signum: int) -> None:
        assert self._process is not None
        for pid in [self._process.pid, *_descendants(self._process.pid)]:
            with suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(pid, signum)


class PrivatePostgres(PrivateServer):
    def __init__(self, directory: Path) -> None:
        super().__init__("PostgreSQL")
        self._directory = directory
        # initdb and postgres refuse to run as root: use the system's postgres user then.
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            account = pwd.getpwnam(self._user)
            os.chown(directory, account.pw_uid, account.pw_gid)
        subprocess.run(
            [
                _postgres_binary("initdb"),
                f"--pgdata={directory / 'data'}",
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            user=self._user,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self) -> tuple[list[str], str | None]:
        command = [
            _postgres_binary("postgres"),
            "-D",
            str(self._directory / "data"),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
        ]
        return command, self._user

    def _answers(self) -> bool:
        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False


class PrivateRedis(PrivateServer):
    def __init__(self) -> None:
        super().__init__("Redis")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _command(self) -> tuple[list[str], str | None]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        return [binary, *options, "--appendonly", "no"], None

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    with tempfile.TemporaryDirectory(prefix="forge-pg-") as directory:
        server = PrivatePostgres(Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.kill()


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _descendants(root: int) -> list[int]:
    """Every process below `root`, from /proc (parents before their children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces; the fields after its ')' do not.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [root]
    while pending:
        below = children.get(pending.pop(), [])
        found += below
        pending += below
    return found


def _postgres_binary(name: str) -> str:
    for directory in _POSTGRES_BIN_DIRS:
        if (directory / name).is_file():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is required (Debian: apt-get install postgresql)")
    return found
