from modules.testing.postgres_fixtures import database_url, postgres_admin_url

# Fixtures for these tests.
__all__ = ["database_url", "postgres_admin_url"]
