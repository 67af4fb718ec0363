from modules.testing.postgres_fixtures import postgres_admin_url
from modules.testing.s3_fixtures import s3_endpoint_url
from modules.testing.stack_fixtures import forge_stack, stack_database_url, stack_redis

# Fixtures for these tests.
__all__ = [
    "forge_stack",
    "postgres_admin_url",
    "s3_endpoint_url",
    "stack_database_url",
    "stack_redis",
]
