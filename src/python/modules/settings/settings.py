"""Every Forge setting, typed and documented, read from `FORGE_*` environment variables.

The defaults suit a developer machine (services on 127.0.0.1); `.env.example` lists every
variable with the values the Compose stack uses.
"""

import re
from typing import Annotated, Literal, Self

from pydantic import (
    AnyHttpUrl,
    Field,
    PostgresDsn,
    RedisDsn,
    SecretStr,
    UrlConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FORGE_"

# The only driver Forge ships; SQLAlchemy uses it for both the async (api) and sync engines.
DatabaseUrl = Annotated[PostgresDsn, UrlConstraints(allowed_schemes=["postgresql+psycopg"])]
Seconds = Annotated[float, Field(gt=0, le=300)]
# 0: a port the kernel picks; the server logs the one it bound.
Port = Annotated[int, Field(ge=0, le=65535)]

# S3 bucket naming rules (the subset every S3 implementation accepts).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        # Environment variables only: a `.env` file belongs to Compose, not to every process.
        env_file=None,
        extra="forbid",
        validate_default=True,
    )

    environment: Literal["development", "production"] = Field(
        "development",
        description=(
            "'production' refuses to start with a secret left unset or at a development value "
            "(the defaults here and in .env.example)."
        ),
    )

    # --- Logging ---
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of the JSON log lines every process writes to stdout."
    )

    # --- PostgreSQL ---
    database_url: DatabaseUrl = Field(
        PostgresDsn("postgresql+psycopg://forge:forge@127.0.0.1:5432/forge"),
        description="SQLAlchemy URL of the PostgreSQL database (driver postgresql+psycopg).",
    )
    database_pool_size: int = Field(
        15,
        ge=1,
        le=100,
        description=(
            "The most PostgreSQL connections each process opens (on demand) and keeps for "
            "reuse; a process that uses them all waits for one to come back."
        ),
    )
    database_connect_timeout_s: Seconds = Field(
        5.0, description="How long opening a PostgreSQL connection may take."
    )

    # --- Object storage (S3 API: MinIO in Compose) ---
    s3_endpoint_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:9000"), description="Base URL of the S3-compatible endpoint."
    )
    s3_region: str = Field("us-east-1", min_length=1, description="Region used to sign requests.")
    s3_access_key_id: str = Field("forge", min_length=1, description="S3 access key id.")
    s3_secret_access_key: SecretStr = Field(
        SecretStr("forge-dev-secret"), description="S3 secret access key."
    )
    s3_bucket: str = Field("forge-artifacts", description="Bucket that holds job artifacts.")
    s3_public_endpoint_url: AnyHttpUrl | None = Field(
        None,
        description=(
            "Base URL of the S3 endpoint as clients reach it (when FORGE_S3_ENDPOINT_URL is an "
            "internal address); presigned artifact URLs are signed for its host. Unset or "
            "empty: FORGE_S3_ENDPOINT_URL."
        ),
    )
    artifact_url_expiry_s: int = Field(
        3600,
        ge=60,
        le=604800,  # SigV4 presigned URLs last at most 7 days
        description="How long a presigned artifact download URL stays valid (seconds).",
    )

    # --- Celery on Redis ---
    broker_url: RedisDsn = Field(
        RedisDsn("redis://127.0.0.1:6379/0"), description="Celery broker (Redis)."
    )
    result_backend_url: RedisDsn = Field(
        RedisDsn("redis://127.0.0.1:6379/1"), description="Celery result backend (Redis)."
    )

    # --- api process ---
    api_host: str = Field("127.0.0.1", description="Interface the api listens on.")
    api_port: Port = Field(8000, description="TCP port the api listens on.")
    api_workers: int = Field(
        1, ge=1, le=64, description="uvicorn worker processes; metrics aggregate across them."
    )
    api_max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=104_857_600,
        description="The largest request body the api reads (bytes); a larger one gets 413.",
    )
    api_key_cache_s: float = Field(
        10.0,
        ge=0,
        le=300,
        description=(
            "How long each api process trusts a verified API key without asking PostgreSQL "
            "again (0: every request asks); a revoked key is refused at most this late."
        ),
    )

    events_heartbeat_s: Seconds = Field(
        15.0,
        description=(
            "How often an open event stream (GET /v1/jobs/{id}/events as text/event-stream) "
            "sends a comment line when no event came, so proxies keep it open."
        ),
    )
    events_poll_s: Seconds = Field(
        10.0,
        description=(
            "While the api's PostgreSQL LISTEN connection is down, how often open event "
            "streams and requests held by `Prefer: wait` read their job anyway; while it is up, "
            "how long it may stay quiet before it is checked with a query."
        ),
    )

    # --- Readiness (/readyz) ---
    readiness_database: bool = Field(
        True,
        description=(
            "Whether /readyz checks PostgreSQL (the api's check also compares the schema "
            "revision with the one its migrations end at)."
        ),
    )
    readiness_database_timeout_s: Seconds = Field(
        1.0, description="How long the PostgreSQL readiness check may take."
    )
    readiness_storage: Literal["required", "permissive", "off"] = Field(
        "required",
        description=(
            "Object-store readiness: 'required' needs the bucket to exist, 'permissive' only "
            "needs the endpoint to answer (for before the bucket is created), 'off' skips it."
        ),
    )
    readiness_storage_timeout_s: Seconds = Field(
        1.0, description="How long the object-store readiness check may take."
    )
    readiness_broker: bool = Field(
        True, description="Whether the worker's /readyz checks the broker (Redis)."
    )
    readiness_broker_timeout_s: Seconds = Field(
        1.0, description="How long the broker readiness check may take."
    )
    readiness_cache_s: float = Field(
        0.2,
        ge=0,
        le=10,
        description=(
            "How long a readiness check's result is reused before its dependency is checked "
            "again (0: only concurrent requests share a check); under steady probing a failed "
            "dependency shows in /readyz within half of this plus its check's timeout."
        ),
    )

    # --- worker process ---
    worker_concurrency: int = Field(2, ge=1, le=64, description="Celery prefork pool size.")
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Interface of the worker's /metrics and /healthz endpoint."
    )
    worker_metrics_port: Port = Field(
        9464, description="Port of the worker's /metrics and /healthz endpoint."
    )
    worker_task_soft_time_limit_s: int = Field(
        3300, ge=1, description="A task gets SoftTimeLimitExceeded after this many seconds."
    )
    worker_task_time_limit_s: int = Field(
        3600, ge=1, description="A task's process is killed after this many seconds."
    )
    worker_shutdown_grace_s: float = Field(
        20.0,
        ge=0,
        le=3600,
        description=(
            "On SIGTERM the worker takes no more jobs and lets running ones go on this long; "
            "a job still running then is given back (queued) so another worker runs it at once."
        ),
    )

    # --- Jobs ---
    job_lease_s: float = Field(
        30.0,
        ge=1,
        le=600,
        description=(
            "A running job's lease (seconds): the worker running it renews it every third of "
            "this; once it lapses unrenewed, the reconciler requeues (or fails) the job."
        ),
    )
    job_max_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="How many times a job may start (a lapsed lease counts) before it fails.",
    )
    job_max_input_bytes: int = Field(
        65_536,
        ge=256,
        le=10_485_760,
        description="The largest job input accepted, as compact JSON (bytes); larger gets 413.",
    )
    job_max_queued_per_owner: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description=(
            "How many queued jobs an owner may have; a submission beyond gets 429 (concurrent "
            "submissions may overshoot by as many as are in flight)."
        ),
    )
    job_queue_full_retry_after_s: int = Field(
        10,
        ge=1,
        le=3600,
        description="The Retry-After (seconds) of a submission refused because the queue is full.",
    )
    reconcile_interval_s: float = Field(
        5.0,
        ge=0.1,
        le=300,
        description="How often the reconciler expires lapsed leases and samples queue depths.",
    )
    reconciler_metrics_port: Port = Field(
        9102, description="Port of the reconciler's /healthz, /readyz and /metrics endpoint."
    )

    @field_validator("s3_public_endpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An env file (Compose's .env) lists every setting: there, unset is an empty value.
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("s3_bucket")
    @classmethod
    def _valid_bucket_name(cls, value: str) -> str:
        if not _BUCKET_NAME.match(value) or ".." in value:
            raise ValueError(
                "must be 3-63 characters of lowercase letters, digits, '.' and '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _soft_limit_below_hard_limit(self) -> Self:
        if self.worker_task_soft_time_limit_s >= self.worker_task_time_limit_s:
            raise ValueError(
                f"{ENV_PREFIX}WORKER_TASK_SOFT_TIME_LIMIT_S must be below "
                f"{ENV_PREFIX}WORKER_TASK_TIME_LIMIT_S"
            )
        return self
