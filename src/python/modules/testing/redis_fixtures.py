"""The Redis fixture (server from FORGE_TEST_REDIS_URL, else the local default); a package's
conftest.py imports it when its tests need Redis. A missing server fails the test, never skips."""

import os

import pytest
import redis

REDIS_URL = os.environ.get("FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture(scope="session")
def redis_base_url() -> str:
    """URL of a reachable Redis server, without a database number (see `execution_slot`)."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        pytest.fail(
            f"Redis is required but not reachable at {REDIS_URL} ({error}). "
            "Start it (DEV.md, 'Prerequisites') or set FORGE_TEST_REDIS_URL.",
            pytrace=False,
        )
    return REDIS_URL.rstrip("/")
