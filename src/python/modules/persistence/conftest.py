from modules.testing.postgres_fixtures import database_url, db_session, postgres_admin_url

__all__ = ["database_url", "db_session", "postgres_admin_url"]  # fixtures for these tests
