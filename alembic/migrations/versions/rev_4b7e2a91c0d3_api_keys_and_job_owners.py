"""API keys; each job belongs to an owner, which scopes its idempotency key and its listings
(docs/adrs/013-api-keys.md)

Revision ID: 4b7e2a91c0d3
Revises: 3c1f0e7a9b42
Create Date: 2026-11-30 13:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4b7e2a91c0d3"
down_revision: str | Sequence[str] | None = "3c1f0e7a9b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Jobs submitted before keys existed; a key created with `--owner legacy` reaches them.
LEGACY_OWNER = "legacy"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "key_hash ~ '^[0-9a-f]{64}$'", name=op.f("ck_api_keys_key_hash_is_sha256")
        ),
        sa.CheckConstraint("name <> ''", name=op.f("ck_api_keys_name_not_empty")),
        sa.CheckConstraint("owner <> ''", name=op.f("ck_api_keys_owner_not_empty")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )

    op.add_column(
        "jobs", sa.Column("owner", sa.Text(), server_default=LEGACY_OWNER, nullable=False)
    )
    op.alter_column("jobs", "owner", server_default=None)
    op.create_check_constraint(op.f("ck_jobs_owner_not_empty"), "jobs", "owner <> ''")
    op.drop_constraint(op.f("uq_jobs_idempotency_key"), "jobs", type_="unique")
    op.create_unique_constraint(
        op.f("uq_jobs_owner_idempotency_key"), "jobs", ["owner", "idempotency_key"]
    )
    # Listings are per owner: the owner leads each listing index.
    op.drop_index(op.f("ix_jobs_created_at_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_status_created_at_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_model_id_created_at_id"), table_name="jobs")
    op.create_index(op.f("ix_jobs_owner_created_at_id"), "jobs", ["owner", "created_at", "id"])
    op.create_index(
        op.f("ix_jobs_owner_status_created_at_id"), "jobs", ["owner", "status", "created_at", "id"]
    )
    op.create_index(
        op.f("ix_jobs_owner_model_id_created_at_id"),
        "jobs",
        ["owner", "model_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_owner_model_id_created_at_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_owner_status_created_at_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_owner_created_at_id"), table_name="jobs")
    op.create_index(
        op.f("ix_jobs_model_id_created_at_id"), "jobs", ["model_id", "created_at", "id"]
    )
    op.create_index(op.f("ix_jobs_status_created_at_id"), "jobs", ["status", "created_at", "id"])
    op.create_index(op.f("ix_jobs_created_at_id"), "jobs", ["created_at", "id"])
    op.drop_constraint(op.f("uq_jobs_owner_idempotency_key"), "jobs", type_="unique")
    # A key is global again: of the jobs that share one (under different owners), the oldest
    # keeps it.
    op.execute(
        "UPDATE jobs SET idempotency_key = NULL, request_hash = NULL WHERE id IN (SELECT id FROM "
        "(SELECT id, row_number() OVER (PARTITION BY idempotency_key ORDER BY created_at, id) "
        "AS n FROM jobs WHERE idempotency_key IS NOT NULL) AS numbered WHERE n > 1)"
    )
    op.create_unique_constraint(op.f("uq_jobs_idempotency_key"), "jobs", ["idempotency_key"])
    op.drop_column("jobs", "owner")  # its check constraint goes with it
    op.drop_table("api_keys")
