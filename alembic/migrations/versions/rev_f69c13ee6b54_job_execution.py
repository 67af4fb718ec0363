"""Job execution: leases, cancel requests, maximum attempts, per-job event sequence, listing
indexes, artifact names, model descriptions; a job's output is its artifacts (docs/adrs/011)

Revision ID: f69c13ee6b54
Revises: d9e75be39a6d
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f69c13ee6b54"
down_revision: str | Sequence[str] | None = "d9e75be39a6d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "status IN ('queued', 'running', 'canceling')"


def upgrade() -> None:
    op.add_column("models", sa.Column("description", sa.Text(), server_default="", nullable=False))

    op.add_column(
        "jobs", sa.Column("max_attempts", sa.Integer(), server_default="3", nullable=False)
    )
    op.add_column("jobs", sa.Column("lease_owner", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "jobs", sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "jobs", sa.Column("last_event_seq", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.drop_column("jobs", "output")
    # Jobs written before this revision may have been claimed more often than the new limit.
    op.execute("UPDATE jobs SET max_attempts = attempts WHERE attempts > max_attempts")
    op.create_check_constraint(op.f("ck_jobs_max_attempts_positive"), "jobs", "max_attempts >= 1")
    op.create_check_constraint(
        op.f("ck_jobs_attempts_within_max"), "jobs", "attempts <= max_attempts"
    )
    op.create_check_constraint(
        op.f("ck_jobs_last_event_seq_not_negative"), "jobs", "last_event_seq >= 0"
    )
    op.create_check_constraint(
        op.f("ck_jobs_lease_owner_with_expiry"),
        "jobs",
        "(lease_owner IS NULL) = (lease_expires_at IS NULL)",
    )
    op.drop_index("ix_jobs_active", table_name="jobs")
    op.create_index(
        "ix_jobs_active",
        "jobs",
        ["status", sa.text("priority DESC"), "created_at"],
        postgresql_where=sa.text(ACTIVE),
    )
    op.drop_index(op.f("ix_jobs_model_id_created_at"), table_name="jobs")
    op.create_index(op.f("ix_jobs_created_at_id"), "jobs", ["created_at", "id"])
    op.create_index(op.f("ix_jobs_status_created_at_id"), "jobs", ["status", "created_at", "id"])
    op.create_index(
        op.f("ix_jobs_model_id_created_at_id"), "jobs", ["model_id", "created_at", "id"]
    )

    # Existing events are numbered in id order, which is the order they were written in.
    op.add_column("events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE events SET seq = numbered.seq FROM (SELECT id, row_number() OVER "
        "(PARTITION BY job_id ORDER BY id) AS seq FROM events) AS numbered "
        "WHERE events.id = numbered.id"
    )
    op.execute(
        "UPDATE jobs SET last_event_seq = counted.seq FROM (SELECT job_id, max(seq) AS seq "
        "FROM events GROUP BY job_id) AS counted WHERE jobs.id = counted.job_id"
    )
    op.alter_column("events", "seq", nullable=False)
    op.create_check_constraint(op.f("ck_events_seq_positive"), "events", "seq >= 1")
    op.drop_index(op.f("ix_events_job_id_id"), table_name="events")
    op.create_unique_constraint(op.f("uq_events_job_id_seq"), "events", ["job_id", "seq"])

    # An artifact's name is the last part of its key (jobs/<job>/<position>/<name>).
    op.add_column("artifacts", sa.Column("name", sa.Text(), nullable=True))
    op.execute("UPDATE artifacts SET name = regexp_replace(key, '^.*/', '')")
    op.alter_column("artifacts", "name", nullable=False)
    op.create_check_constraint(op.f("ck_artifacts_name_not_empty"), "artifacts", "name <> ''")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_artifacts_name_not_empty"), "artifacts", type_="check")
    op.drop_column("artifacts", "name")

    op.drop_constraint(op.f("uq_events_job_id_seq"), "events", type_="unique")
    op.create_index(op.f("ix_events_job_id_id"), "events", ["job_id", "id"])
    op.drop_column("events", "seq")  # its check constraint goes with it

    op.drop_index(op.f("ix_jobs_model_id_created_at_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_status_created_at_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_created_at_id"), table_name="jobs")
    op.create_index(op.f("ix_jobs_model_id_created_at"), "jobs", ["model_id", "created_at"])
    op.drop_index("ix_jobs_active", table_name="jobs")
    op.create_index(
        "ix_jobs_active", "jobs", ["status", "created_at"], postgresql_where=sa.text(ACTIVE)
    )
    op.add_column(
        "jobs", sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    for column in (
        "last_event_seq",
        "cancel_requested_at",
        "lease_expires_at",
        "lease_owner",
        "max_attempts",
    ):
        op.drop_column("jobs", column)  # their check constraints go with them
    op.drop_column("models", "description")
