from modules.testing.s3_fixtures import s3_endpoint_url

__all__ = ["s3_endpoint_url"]  # fixtures for these tests
