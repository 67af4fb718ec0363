"""Notify event inserts: every new event sends pg_notify('forge_events', <job id>), which wakes
the api's event streams and `Prefer: wait` requests (docs/adrs/012-live-job-events.md)

Revision ID: 3c1f0e7a9b42
Revises: f69c13ee6b54
Create Date: 2026-12-01 12:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3c1f0e7a9b42"
down_revision: str | Sequence[str] | None = "f69c13ee6b54"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NOTIFY is delivered when the inserting transaction commits (never for a rollback), and
# PostgreSQL folds identical notifications of one transaction into one: a transaction that
# appends five events to a job wakes its listeners once, after the events are visible.
NOTIFY_EVENT = """
CREATE FUNCTION notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('forge_events', NEW.job_id::text);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(NOTIFY_EVENT)
    op.execute(
        "CREATE TRIGGER events_notify AFTER INSERT ON events "
        "FOR EACH ROW EXECUTE FUNCTION notify_event()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER events_notify ON events")
    op.execute("DROP FUNCTION notify_event()")
