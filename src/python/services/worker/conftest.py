import pytest
import redis

from modules.testing.isolation import execution_slot
from modules.testing.postgres_fixtures import database_url, postgres_admin_url
from modules.testing.redis_fixtures import redis_base_url

# Fixtures for these tests.
__all__ = ["celery_urls", "database_url", "postgres_admin_url", "redis_base_url"]


@pytest.fixture(scope="module")
def celery_urls(redis_base_url: str) -> tuple[str, str]:
    """Broker and result backend URLs on Redis databases that only this test process uses,
    emptied first: (broker, backend)."""
    slot = execution_slot()
    urls = f"{redis_base_url}/{2 + 2 * slot}", f"{redis_base_url}/{3 + 2 * slot}"
    for url in urls:
        redis.Redis.from_url(url).flushdb()
    return urls
