"""HTTP benchmark of the api: /healthz with all of Forge's middleware (request ID, JSON access
log, metrics) next to bare FastAPI and bare Starlette serving the same body, each under the same
uvicorn settings (one worker process, uvloop + httptools) and the same wrk load; then /readyz
with healthy PostgreSQL and S3. Run: `make bench-api` (needs wrk and a local PostgreSQL)."""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from modules.settings import Settings
from modules.storage.s3 import ensure_bucket, make_s3_client
from modules.testing.processes import python_subprocess_env, reserve_free_port

GOAL_RATIO = 0.7
UVICORN_FLAGS = [
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]


@dataclass(frozen=True)
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float


@contextmanager
def server(command: list[str], port: int, probe: str = "/healthz", **env: str) -> Iterator[str]:
    """A server process with its output discarded (logging cost stays, terminal cost goes)."""
    process = subprocess.Popen(
        command,
        env=python_subprocess_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}{probe}").status_code < 500:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"bench: server {command} did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def uvicorn_app(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--port", str(port), *UVICORN_FLAGS]


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from one wrk run with one thread."""
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return rate, _percentile(output, "50"), _percentile(output, "99")


def _percentile(output: str, which: str) -> float:
    value, unit = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s)$", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure(name: str, url: str, seconds: int, connections: int) -> Result:
    wrk(url, 2, connections)  # warm-up: imports, caches, connection pools
    return Result(name, *wrk(url, seconds, connections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per measurement (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "FORGE_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (Debian/Ubuntu: apt-get install wrk)")

    s3_port, forge_port, fastapi_port, starlette_port = (reserve_free_port() for _ in range(4))
    moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)]
    forge_env = {
        "FORGE_API_PORT": str(forge_port),
        "FORGE_DATABASE_URL": args.database_url,
        "FORGE_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "FORGE_S3_BUCKET": "forge-bench",
    }
    settings = Settings.model_validate(
        {key.removeprefix("FORGE_").lower(): value for key, value in forge_env.items()}
    )
    seconds, connections = args.seconds, args.connections
    with server(moto, s3_port, probe="/moto-api/") as _:
        ensure_bucket(make_s3_client(settings), settings.s3_bucket)
        with server([sys.executable, "-m", "services.api.main"], forge_port, **forge_env) as forge:
            forge_health = measure("forge /healthz", f"{forge}/healthz", seconds, connections)
            forge_ready = measure("forge /readyz", f"{forge}/readyz", seconds, connections)
    with server(uvicorn_app("benchmarks.bare_apps:fastapi_app", fastapi_port), fastapi_port) as url:
        bare_fastapi = measure("bare FastAPI /healthz", f"{url}/healthz", seconds, connections)
    with server(
        uvicorn_app("benchmarks.bare_apps:starlette_app", starlette_port), starlette_port
    ) as url:
        bare_starlette = measure("bare Starlette /healthz", f"{url}/healthz", seconds, connections)

    print(f"wrk: 1 thread, {connections} connections, {seconds} s per row after a 2 s warm-up")
    print(f"{'endpoint':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs FastAPI':>12}")
    for result in (forge_health, bare_fastapi, bare_starlette, forge_ready):
        ratio = result.requests_per_s / bare_fastapi.requests_per_s
        print(
            f"{result.name:<26}{result.requests_per_s:>10.0f}{result.p50_ms:>9.2f}"
            f"{result.p99_ms:>9.2f}{ratio:>11.2f}x"
        )
    ratio = forge_health.requests_per_s / bare_fastapi.requests_per_s
    verdict = "meets" if ratio >= GOAL_RATIO else "MISSES"
    print(f"forge /healthz at {ratio:.2f}x bare FastAPI: {verdict} the {GOAL_RATIO}x goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
