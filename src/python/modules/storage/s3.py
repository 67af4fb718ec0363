"""S3 clients configured from Settings, the bucket operations Forge needs at start-up, and
artifacts: stored with a checksum S3 verifies, downloaded through presigned URLs."""

import base64
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.utils import determine_content_length

from modules.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Error codes for "no such bucket" (HeadBucket has no body, so only the HTTP status) and for
# "you created it already" (MinIO; AWS us-east-1 answers 200 instead).
_MISSING = {"404", "NoSuchBucket", "NotFound"}
_ALREADY_OURS = {"BucketAlreadyOwnedByYou"}
# botocore sends every PutObject body with `Expect: 100-continue`: the headers, a wait for the
# server's "100 Continue", then the body. That round trip is worth it for a body large enough not
# to send to a server that would refuse it; a smaller one goes with its headers.
EXPECT_CONTINUE_FROM_BYTES = 1024 * 1024


def make_s3_client(settings: Settings, *, timeout_s: float | None = None) -> "S3Client":
    """A thread-safe boto3 S3 client for the configured endpoint.

    `timeout_s` bounds connect and read and disables retries: for probes that must answer
    quickly. Without it boto3's standard retry mode applies.
    """
    config = Config(
        region_name=settings.s3_region,
        s3={"addressing_style": "path"},  # MinIO serves path-style without DNS wildcards
        retries={"mode": "standard", "total_max_attempts": 1 if timeout_s else 3},
        connect_timeout=timeout_s or 5,
        read_timeout=timeout_s or 60,
    )
    client = boto3.client(
        "s3",
        endpoint_url=str(settings.s3_endpoint_url),
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        config=config,
    )
    client.meta.events.register("before-sign.s3.PutObject", _expect_continue_for_large_bodies)
    return client


def _expect_continue_for_large_bodies(request: AWSRequest, **_: object) -> None:
    length = determine_content_length(request.body)
    if length is not None and length < EXPECT_CONTINUE_FROM_BYTES:
        del request.headers["Expect"]  # not signed (SigV4 leaves it out); absent is no error


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    size_bytes: int
    sha256: str  # hex digest of the bytes stored
    content_type: str


def put_artifact(
    client: "S3Client", bucket: str, key: str, data: bytes, content_type: str
) -> StoredObject:
    """Store `data` at `key`, replacing what is there. The SHA-256 goes with the request, so the
    server refuses a body that arrives different from what was hashed here (BadDigest)."""
    digest = hashlib.sha256(data).digest()
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        ChecksumAlgorithm="SHA256",  # names it, so servers that only store it (moto) do too
        ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
    )
    return StoredObject(bucket, key, len(data), digest.hex(), content_type)


def presign_get(settings: Settings, bucket: str, key: str) -> str:
    """A URL that downloads the object without credentials for `artifact_url_expiry_s` seconds.

    It is signed for the public endpoint: the host is part of the signature, so a URL for the
    internal endpoint rewritten to the public host would be refused. Signing is local (no
    request is made)."""
    return _presigner(settings).generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": key},
        ExpiresIn=settings.artifact_url_expiry_s,
    )


# Building a client loads botocore's service model (milliseconds); signing with one is cheap.
@functools.lru_cache(maxsize=4)
def _presigner(settings: Settings) -> "S3Client":
    return boto3.client(
        "s3",
        endpoint_url=str(settings.s3_public_endpoint_url or settings.s3_endpoint_url),
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        config=Config(
            region_name=settings.s3_region,
            s3={"addressing_style": "path"},
            signature_version="s3v4",  # accepted by AWS in every region and by MinIO
        ),
    )


def bucket_exists(client: "S3Client", bucket: str) -> bool:
    """True if the bucket exists and these credentials can use it; False if it is absent.

    Any other failure (wrong credentials, endpoint down) raises: it is not "absent".
    """
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in _MISSING:
            return False
        raise
    return True


def ensure_bucket(client: "S3Client", bucket: str) -> bool:
    """Create the bucket unless it exists. Returns True if this call created it."""
    if bucket_exists(client, bucket):
        return False
    try:
        if client.meta.region_name == "us-east-1":  # the one region that refuses a constraint
            client.create_bucket(Bucket=bucket)
        else:
            client.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": client.meta.region_name},  # type: ignore[typeddict-item]
            )
    except ClientError as error:  # created concurrently by another process
        if error.response.get("Error", {}).get("Code") in _ALREADY_OURS:
            return False
        raise
    return True


def sign_artifact_url(settings: Settings, bucket: str, key: str) -> tuple[str, datetime]:
    """presign_get, with the time the URL stops working (for API bodies)."""
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.artifact_url_expiry_s)
    return presign_get(settings, bucket, key), expires_at


class S3ArtifactStore:
    """Where a job's artifacts go (modules.jobs.execution.ArtifactStore): one bucket."""

    def __init__(self, client: "S3Client", bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return put_artifact(self.client, self.bucket, key, data, content_type)
