"""S3 clients configured from Settings, and the bucket operations Forge needs at start-up."""

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from modules.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Error codes for "no such bucket" (HeadBucket has no body, so only the HTTP status) and for
# "you created it already" (MinIO; AWS us-east-1 answers 200 instead).
_MISSING = {"404", "NoSuchBucket", "NotFound"}
_ALREADY_OURS = {"BucketAlreadyOwnedByYou"}


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
    return boto3.client(
        "s3",
        endpoint_url=str(settings.s3_endpoint_url),
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        config=config,
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
