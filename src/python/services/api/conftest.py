from modules.testing.postgres_fixtures import database_url, postgres_admin_url
from modules.testing.s3_fixtures import s3_endpoint_url

# Fixtures for these tests.
__all__ = ["database_url", "postgres_admin_url", "s3_endpoint_url"]
