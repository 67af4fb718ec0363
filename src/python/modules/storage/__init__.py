"""Object storage (the S3 API; MinIO in Compose) through boto3."""
