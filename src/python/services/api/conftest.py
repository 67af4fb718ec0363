from modules.testing.postgres_fixtures import postgres_admin_url
from modules.testing.s3_fixtures import s3_endpoint_url

__all__ = ["postgres_admin_url", "s3_endpoint_url"]  # fixtures for these tests
