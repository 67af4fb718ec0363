"""What every benchmark takes: the PostgreSQL server (and Redis) it may use, and wrk."""

import argparse
import os
import shutil

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


def add_database_url(parser: argparse.ArgumentParser, database: str) -> None:
    """--database-url (FORGE_BENCH_DATABASE_URL): a server where the benchmark recreates
    `database`."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("FORGE_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"a server where the benchmark may create the database {database}",
    )


def add_redis_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url", default=os.environ.get("FORGE_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    )


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
