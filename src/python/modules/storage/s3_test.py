import base64
import hashlib
import hmac
import os
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from botocore.exceptions import EndpointConnectionError
from pydantic import AnyHttpUrl

from modules.settings import Settings
from modules.storage.s3 import (
    EXPECT_CONTINUE_FROM_BYTES,
    StoredObject,
    bucket_exists,
    ensure_bucket,
    make_s3_client,
    presign_get,
    put_artifact,
)
from modules.testing.network import closed_port


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


@pytest.mark.parametrize(
    ("size", "waits_for_continue"), [(100, False), (EXPECT_CONTINUE_FROM_BYTES, True)]
)
def test_a_small_artifact_goes_with_its_headers_and_a_large_one_waits_for_100_continue(
    settings: Settings, size: int, waits_for_continue: bool
) -> None:
    client = make_s3_client(settings)
    ensure_bucket(client, settings.s3_bucket)
    expect_headers: list[bytes | None] = []  # as they go on the wire

    def record(request: Any, **_: object) -> None:  # returning None lets the request go
        expect_headers.append(request.headers.get("Expect"))

    client.meta.events.register("before-send.s3.PutObject", record)
    data = os.urandom(size)
    put_artifact(client, settings.s3_bucket, "out.bin", data, "application/octet-stream")

    assert expect_headers == ([b"100-continue"] if waits_for_continue else [None])
    assert client.get_object(Bucket=settings.s3_bucket, Key="out.bin")["Body"].read() == data


def test_unreachable_endpoint_is_an_error_not_a_missing_bucket() -> None:
    closed = Settings(s3_endpoint_url=f"http://127.0.0.1:{closed_port()}")  # type: ignore[arg-type]
    with pytest.raises(EndpointConnectionError):
        bucket_exists(make_s3_client(closed, timeout_s=1), closed.s3_bucket)


def sigv4_query_signature(url: str, host: str, secret: str) -> str:
    """The signature a SigV4 presigned GET URL must carry when it is sent to `host` (AWS's
    "Authenticating requests: query parameters"), computed independently of botocore: moto
    serves presigned URLs without checking their signatures."""
    parts = urlsplit(url)
    params = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name != "X-Amz-Signature"
    )
    query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in params
    )
    request = "\n".join(["GET", parts.path, query, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"])
    fields = dict(params)
    scope = fields["X-Amz-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            fields["X-Amz-Date"],
            scope,
            hashlib.sha256(request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_put_artifact_stores_the_bytes_with_their_checksum(settings: Settings) -> None:
    client = make_s3_client(settings)
    ensure_bucket(client, settings.s3_bucket)
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    stored = put_artifact(client, settings.s3_bucket, "jobs/1/0/image.png", data, "image/png")
    digest = hashlib.sha256(data)
    assert stored == StoredObject(
        settings.s3_bucket, "jobs/1/0/image.png", len(data), digest.hexdigest(), "image/png"
    )
    head = client.head_object(
        Bucket=settings.s3_bucket, Key="jobs/1/0/image.png", ChecksumMode="ENABLED"
    )
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == len(data)
    assert head["ChecksumSHA256"] == base64.b64encode(digest.digest()).decode()


def test_put_artifact_replaces_what_the_key_held(settings: Settings) -> None:
    client = make_s3_client(settings)
    ensure_bucket(client, settings.s3_bucket)
    put_artifact(
        client, settings.s3_bucket, "jobs/1/1/manifest.json", b'{"v": 1}', "application/json"
    )
    put_artifact(
        client, settings.s3_bucket, "jobs/1/1/manifest.json", b'{"v": 2}', "application/json"
    )
    body = client.get_object(Bucket=settings.s3_bucket, Key="jobs/1/1/manifest.json")["Body"]
    assert body.read() == b'{"v": 2}'


def test_presigned_url_downloads_the_artifact_from_the_endpoint(settings: Settings) -> None:
    client = make_s3_client(settings)
    ensure_bucket(client, settings.s3_bucket)
    stored = put_artifact(
        client, settings.s3_bucket, "jobs/2/0/a.bin", b"artifact" * 1000, "application/octet-stream"
    )
    url = presign_get(settings, stored.bucket, stored.key)
    assert url.startswith(f"{settings.s3_endpoint_url}{stored.bucket}/jobs/2/0/a.bin?")
    response = httpx.get(url)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == stored.sha256
    assert response.headers["content-type"] == "application/octet-stream"


def test_presigned_url_is_signed_for_the_public_endpoint(
    settings: Settings, s3_endpoint_url: str
) -> None:
    """The same server under two names: the services use 127.0.0.1, clients `localhost`."""
    client = make_s3_client(settings)
    ensure_bucket(client, settings.s3_bucket)
    stored = put_artifact(
        client, settings.s3_bucket, "jobs/3/1/image.png", b"png bytes", "image/png"
    )
    internal_host = urlsplit(s3_endpoint_url).netloc
    public_host = internal_host.replace("127.0.0.1", "localhost")
    public = settings.model_copy(
        update={
            "s3_public_endpoint_url": AnyHttpUrl(f"http://{public_host}"),
            "artifact_url_expiry_s": 900,
        }
    )

    url = presign_get(public, stored.bucket, stored.key)

    assert url.startswith(f"http://{public_host}/{stored.bucket}/jobs/3/1/image.png?")
    fields = dict(parse_qsl(urlsplit(url).query))
    assert (fields["X-Amz-Expires"], fields["X-Amz-SignedHeaders"]) == ("900", "host")
    secret = settings.s3_secret_access_key.get_secret_value()
    assert fields["X-Amz-Signature"] == sigv4_query_signature(url, public_host, secret)
    assert fields["X-Amz-Signature"] != sigv4_query_signature(url, internal_host, secret)
    response = httpx.get(url)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == stored.sha256


def test_presigning_makes_no_request() -> None:
    closed = Settings(s3_public_endpoint_url=f"http://127.0.0.1:{closed_port()}")  # type: ignore[arg-type]
    assert presign_get(closed, "forge-artifacts", "jobs/4/0/x").startswith(
        f"{closed.s3_public_endpoint_url}forge-artifacts/jobs/4/0/x?"
    )
