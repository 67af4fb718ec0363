import uuid

import pytest

from modules.settings import Settings
from modules.storage.s3 import bucket_exists, ensure_bucket, make_s3_client


@pytest.fixture()
def settings(s3_endpoint_url: str) -> Settings:
    return Settings(s3_endpoint_url=s3_endpoint_url, s3_bucket=f"test-{uuid.uuid4().hex[:12]}")  # type: ignore[arg-type]


def test_ensure_bucket_creates_once_and_is_idempotent(settings: Settings) -> None:
    client = make_s3_client(settings)
    assert not bucket_exists(client, settings.s3_bucket)
    assert ensure_bucket(client, settings.s3_bucket) is True
    assert bucket_exists(client, settings.s3_bucket)
    assert ensure_bucket(client, settings.s3_bucket) is False


def test_objects_round_trip_through_the_configured_client(settings: Settings) -> None:
    client = make_s3_client(settings, timeout_s=2)
    ensure_bucket(client, settings.s3_bucket)
    client.put_object(Bucket=settings.s3_bucket, Key="jobs/1/out.txt", Body=b"forge")
    body = client.get_object(Bucket=settings.s3_bucket, Key="jobs/1/out.txt")["Body"].read()
    assert body == b"forge"


def test_unreachable_endpoint_is_an_error_not_a_missing_bucket() -> None:
    from botocore.exceptions import EndpointConnectionError

    from modules.testing.network import closed_port

    closed = Settings(s3_endpoint_url=f"http://127.0.0.1:{closed_port()}")  # type: ignore[arg-type]
    with pytest.raises(EndpointConnectionError):
        bucket_exists(make_s3_client(closed, timeout_s=1), closed.s3_bucket)
