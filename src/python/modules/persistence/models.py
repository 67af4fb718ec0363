"""Forge's tables: models, the jobs run on them, each job's steps, events and artifacts, and the
API keys jobs are submitted with.

docs/data-model.md describes them; docs/adrs/004-data-model.md says why they look like this.
Rules the database enforces are declared here too, so autogenerate and the drift gate see them,
except the `updated_at` trigger, which lives in the baseline migration.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from modules.persistence.base import Base, JsonObject
from modules.persistence.statuses import ACTIVE_JOB_STATUSES, JobStatus, StepStatus, sql_list

_SHA256_HEX = "'^[0-9a-f]{64}$'"
_EMPTY_OBJECT = text("'{}'::jsonb")


def _status(enum: type[StrEnum]) -> Enum:
    """A text column limited to the enum's values by a CHECK named `ck_<table>_status` (not a
    PostgreSQL enum type: see the ADR)."""
    return Enum(
        enum,
        name="status",
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def _not_empty(*columns: str) -> list[CheckConstraint]:
    return [CheckConstraint(f"{column} <> ''", name=f"{column}_not_empty") for column in columns]


def _is_object(column: str) -> CheckConstraint:
    return CheckConstraint(f"jsonb_typeof({column}) = 'object'", name=f"{column}_is_object")


def _not_negative(column: str) -> CheckConstraint:
    return CheckConstraint(f"{column} >= 0", name=f"{column}_not_negative")


def _finished_after_started() -> CheckConstraint:
    # NULL while either timestamp is unset, and a CHECK passes on NULL.
    return CheckConstraint("finished_at >= started_at", name="finished_after_started")


class Model(Base, kw_only=True):
    """A runnable model: what it does (`task`), which runner executes it, what input it takes."""

    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        *_not_empty("name", "version", "task", "runner"),
        _is_object("input_schema"),
        _is_object("default_parameters"),
    )
    # Read `updated_at` back from the UPDATE (RETURNING): a lazy load would fail under asyncio.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 (SQLAlchemy reads this attribute)

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=func.gen_random_uuid(), init=False
    )
    name: Mapped[str]
    version: Mapped[str]
    task: Mapped[str]
    runner: Mapped[str]
    description: Mapped[str] = mapped_column(default="", server_default="")
    input_schema: Mapped[JsonObject] = mapped_column(JSONB)
    default_parameters: Mapped[JsonObject] = mapped_column(
        JSONB, default_factory=dict, server_default=_EMPTY_OBJECT
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), init=False)
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), server_onupdate=FetchedValue(), init=False
    )


class Job(Base, kw_only=True):
    """One generation request for a model, from queued to a terminal status."""

    __tablename__ = "jobs"
    __table_args__ = (
        _is_object("input"),
        _not_negative("priority"),
        _not_negative("attempts"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        CheckConstraint("attempts <= max_attempts", name="attempts_within_max"),
        _not_negative("last_event_seq"),
        *_not_empty("owner"),
        _finished_after_started(),
        # A lease is an owner with an expiry, or neither.
        CheckConstraint(
            "(lease_owner IS NULL) = (lease_expires_at IS NULL)", name="lease_owner_with_expiry"
        ),
        # A retried request is recognised by its key, per owner; the hash tells a replay from a
        # conflict.
        UniqueConstraint("owner", "idempotency_key"),
        CheckConstraint(
            "(idempotency_key IS NULL) = (request_hash IS NULL)",
            name="idempotency_key_with_request_hash",
        ),
        CheckConstraint(f"request_hash ~ {_SHA256_HEX}", name="request_hash_is_sha256"),
        # The claim's query: queued jobs by priority, then oldest first; the reconciler's scans
        # of running and canceling jobs. Terminal jobs, the vast majority over time, stay out.
        Index(
            "ix_jobs_active",
            "status",
            text("priority DESC"),
            "created_at",
            postgresql_where=text(f"status IN ({sql_list(ACTIVE_JOB_STATUSES)})"),
        ),
        # Listing an owner's jobs, newest first, with a keyset cursor on (created_at, id): one
        # index per filter (a B-tree is read backwards for DESC). The status one also counts an
        # owner's queued jobs for the queue cap.
        Index(None, "owner", "created_at", "id"),
        Index(None, "owner", "status", "created_at", "id"),
        Index(None, "owner", "model_id", "created_at", "id"),
    )
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 (see Model)

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=func.gen_random_uuid(), init=False
    )
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    # Who submitted it (an API key's owner): only that owner sees, lists and cancels it.
    owner: Mapped[str]
    status: Mapped[JobStatus] = mapped_column(
        _status(JobStatus), default=JobStatus.QUEUED, server_default=JobStatus.QUEUED.value
    )
    input: Mapped[JsonObject] = mapped_column(JSONB)
    # No error is SQL NULL: plain JSONB would write None as the JSON value null. (Rows written
    # before hold JSON null; both read back as None.)
    error: Mapped[JsonObject | None] = mapped_column(JSONB(none_as_null=True), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(default=None)
    request_hash: Mapped[str | None] = mapped_column(default=None)
    priority: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Claims so far; the claim that would exceed max_attempts fails the job instead.
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(default=3, server_default=text("3"))
    # The worker running the job, until when; an expired lease is taken back by the reconciler.
    lease_owner: Mapped[str | None] = mapped_column(default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    # The seq of the job's newest event: appending takes the next one under the row's lock.
    last_event_seq: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default=text("0"), init=False
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), init=False)
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), server_onupdate=FetchedValue(), init=False
    )
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Step(Base, kw_only=True):
    """One of a job's ordered steps."""

    __tablename__ = "steps"
    __table_args__ = (
        UniqueConstraint("job_id", "position"),
        # Target of the (job_id, step_id) foreign keys: an event or artifact can only name a
        # step of its own job.
        UniqueConstraint("job_id", "id"),
        _not_negative("position"),
        _not_negative("attempts"),
        _finished_after_started(),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=func.gen_random_uuid(), init=False
    )
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str]
    status: Mapped[StepStatus] = mapped_column(
        _status(StepStatus), default=StepStatus.QUEUED, server_default=StepStatus.QUEUED.value
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[JsonObject | None] = mapped_column(
        JSONB(none_as_null=True), default=None
    )  # as Job's


class Event(Base, kw_only=True):
    """An append-only record of something that happened to a job. `seq` (1, 2, 3 ... per job,
    without gaps) is the stream cursor: ids come from a sequence and become visible out of
    commit order, so a reader resuming after an id could miss one."""

    __tablename__ = "events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["job_id", "step_id"], ["steps.job_id", "steps.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("job_id", "seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        *_not_empty("type"),
        _is_object("payload"),
    )

    # ALWAYS: ids come from the sequence only, so they grow in insertion order.
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True, init=False)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    step_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    type: Mapped[str]
    payload: Mapped[JsonObject] = mapped_column(
        JSONB, default_factory=dict, server_default=_EMPTY_OBJECT
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), init=False)


class Artifact(Base, kw_only=True):
    """An object a job stored in S3."""

    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("bucket", "key"),
        ForeignKeyConstraint(
            ["job_id", "step_id"], ["steps.job_id", "steps.id"], ondelete="CASCADE"
        ),
        Index(None, "job_id"),
        *_not_empty("name"),
        _not_negative("size_bytes"),
        CheckConstraint(f"sha256 ~ {_SHA256_HEX}", name="sha256_is_hex"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=func.gen_random_uuid(), init=False
    )
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    name: Mapped[str]
    bucket: Mapped[str]
    key: Mapped[str]
    content_type: Mapped[str]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), init=False)


class ApiKey(Base, kw_only=True):
    """A credential for the /v1 API. Only the SHA-256 of the key is stored; `prefix`, its
    public start, names it in listings and logs (docs/adrs/013-api-keys.md)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("prefix"),
        *_not_empty("name", "owner"),
        CheckConstraint(f"key_hash ~ {_SHA256_HEX}", name="key_hash_is_sha256"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=func.gen_random_uuid(), init=False
    )
    prefix: Mapped[str]
    key_hash: Mapped[str]
    name: Mapped[str]
    # The principal the key acts for: the jobs it submits are this owner's.
    owner: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), init=False)
    # Written at most once a minute per key, so a busy key does not cost a write per request.
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
