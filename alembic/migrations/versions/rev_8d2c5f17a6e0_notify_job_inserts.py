"""Notify job inserts: every new queued job sends pg_notify('forge_jobs_queued', <job id>),
which the reconciler's dispatcher turns into the job's run message once the insert commits
(docs/adrs/019-run-messages-from-the-database.md)

Revision ID: 8d2c5f17a6e0
Revises: 4b7e2a91c0d3
Create Date: 2026-12-01 11:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8d2c5f17a6e0"
down_revision: str | Sequence[str] | None = "4b7e2a91c0d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Delivered when the inserting transaction commits, never for a rollback. The payload is the
# job's id, so no two notifications of one transaction are alike and PostgreSQL folds none:
# one notification, one message. Requeued jobs (updates) get theirs from the reconciler's pass.
NOTIFY_JOB_QUEUED = """
CREATE FUNCTION notify_job_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('forge_jobs_queued', NEW.id::text);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(NOTIFY_JOB_QUEUED)
    op.execute(
        "CREATE TRIGGER jobs_notify_queued AFTER INSERT ON jobs "
        "FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION notify_job_queued()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_notify_queued ON jobs")
    op.execute("DROP FUNCTION notify_job_queued()")
