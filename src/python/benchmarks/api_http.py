"""HTTP benchmark of the api: /healthz with all of Forge's middleware (request ID, JSON access
log, metrics) next to bare FastAPI and bare Starlette serving the same body, each under the same
uvicorn settings (one worker process, uvloop + httptools) and the same wrk load; then /readyz
with healthy dependencies (a migrated PostgreSQL database, S3) next to its p99 goal, and
/readyz while PostgreSQL hangs (a listener that never answers) next to its bound, the check's
timeout plus 100 ms. Run: `make bench-api` (needs wrk and PostgreSQL: FORGE_BENCH_DATABASE_URL)."""

import argparse
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command

from benchmarks import options
from modules.persistence.migrate import alembic_config
from modules.settings import Settings
from modules.storage.s3 import ensure_bucket, make_s3_client
from modules.testing import s3_server
from modules.testing.databases import recreate_database
from modules.testing.network import silent_listener
from modules.testing.processes import python_subprocess_env, wait_for_reported_port

GOAL_RATIO = 0.7
READY_P99_GOAL_MS = 20
# Each server binds port 0 and names the port it got in its startup line.
UVICORN_LISTENING = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"
UVICORN_FLAGS = [
    "--port",
    "0",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "info",  # startup and shutdown lines only: access lines are off
]


@dataclass(frozen=True)
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float


@contextmanager
def server(command: list[str], listening: str, **env: str) -> Iterator[str]:
    """A server process with its output in a file (logging cost stays, terminal cost goes);
    yields its base URL once it names the port it listens on."""
    with server_process(command, listening, **env) as (_, url):
        yield url


@contextmanager
def server_process(
    command: list[str], listening: str, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """server(), yielding the process too."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "output"
        with output.open("wb") as out:
            process = subprocess.Popen(
                command, env=python_subprocess_env(**env), stdout=out, stderr=subprocess.STDOUT
            )
        try:
            port = wait_for_reported_port(process, output, listening, 30)
            yield process, f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=15)


def uvicorn_app(app: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, *UVICORN_FLAGS]


def wrk(
    url: str, seconds: int, connections: int, script: Path | None = None
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from one wrk run with one thread; `script` (Lua) shapes the
    requests, e.g. a POST body, and then every response must be a success."""
    options = ["-s", str(script)] if script else []
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *options, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if script and (failed := re.search(r"Non-2xx or 3xx responses: (\d+)", output)):
        raise SystemExit(f"bench: {url}: {failed.group(1)} responses were not successes")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return rate, _percentile(output, "50"), _percentile(output, "99")


def _percentile(output: str, which: str) -> float:
    # wrk pads some values with a trailing space ("1.65s ").
    value, unit = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure(name: str, url: str, seconds: int, connections: int) -> Result:
    print(f"bench: {name}: 2 s warm-up, then {seconds} s...", file=sys.stderr, flush=True)
    wrk(url, 2, connections)  # warm-up: imports, caches, connection pools
    return Result(name, *wrk(url, seconds, connections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per measurement (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    options.add_database_url(parser, "forge_bench")
    args = parser.parse_args(argv)
    options.require_wrk()

    forge = [sys.executable, "-m", "services.api.main"]
    forge_env = {
        "FORGE_API_PORT": "0",
        # /readyz checks the schema: a database of its own, at the newest migration.
        "FORGE_DATABASE_URL": recreate_database(args.database_url, "forge_bench"),
        "FORGE_S3_BUCKET": "forge-bench",
    }
    seconds, connections = args.seconds, args.connections
    s3 = [sys.executable, "-m", s3_server.__name__]
    with server(s3, s3_server.READY_PATTERN) as s3_url:
        forge_env["FORGE_S3_ENDPOINT_URL"] = s3_url
        settings = Settings.model_validate(
            {key.removeprefix("FORGE_").lower(): value for key, value in forge_env.items()}
        )
        ensure_bucket(make_s3_client(settings), settings.s3_bucket)
        with alembic_config(settings) as config:
            command.upgrade(config, "head")
        with server(forge, UVICORN_LISTENING, **forge_env) as url:
            forge_health = measure("forge /healthz", f"{url}/healthz", seconds, connections)
            forge_ready = measure("forge /readyz", f"{url}/readyz", seconds, connections)
        with silent_listener() as port:
            hung = {"FORGE_DATABASE_URL": f"postgresql+psycopg://forge@127.0.0.1:{port}/forge"}
            with server(forge, UVICORN_LISTENING, **{**forge_env, **hung}) as url:
                name = "forge /readyz, db hangs"
                forge_hung = measure(name, f"{url}/readyz", seconds, connections)
    with server(uvicorn_app("benchmarks.bare_apps:fastapi_app"), UVICORN_LISTENING) as url:
        bare_fastapi = measure("bare FastAPI /healthz", f"{url}/healthz", seconds, connections)
    with server(uvicorn_app("benchmarks.bare_apps:starlette_app"), UVICORN_LISTENING) as url:
        bare_starlette = measure("bare Starlette /healthz", f"{url}/healthz", seconds, connections)

    print(f"wrk: 1 thread, {connections} connections, {seconds} s per row after a 2 s warm-up")
    print(f"{'endpoint':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs FastAPI':>12}")
    for result in (forge_health, bare_fastapi, bare_starlette, forge_ready, forge_hung):
        ratio = result.requests_per_s / bare_fastapi.requests_per_s
        print(
            f"{result.name:<26}{result.requests_per_s:>10.0f}{result.p50_ms:>9.2f}"
            f"{result.p99_ms:>9.2f}{ratio:>11.2f}x"
        )
    ratio = forge_health.requests_per_s / bare_fastapi.requests_per_s
    verdict = "meets" if ratio >= GOAL_RATIO else "MISSES"
    print(f"forge /healthz at {ratio:.2f}x bare FastAPI: {verdict} the {GOAL_RATIO}x goal")
    verdict = "meets" if forge_ready.p99_ms < READY_P99_GOAL_MS else "MISSES"
    print(
        f"forge /readyz p99 {forge_ready.p99_ms:.2f} ms (healthy dependencies): {verdict} the "
        f"{READY_P99_GOAL_MS} ms goal"
    )
    bound_ms = settings.readiness_database_timeout_s * 1000 + 100
    verdict = "within" if forge_hung.p99_ms <= bound_ms else "OVER"
    print(
        f"forge /readyz while PostgreSQL hangs: p99 {forge_hung.p99_ms:.0f} ms, {verdict} the "
        f"bound of {bound_ms:.0f} ms (the check's timeout + 100 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
