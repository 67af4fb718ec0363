"""`./pants run src/python/devtools:explain-jobs`: the plans of the job listing on 100k jobs.

Creates (or recreates) a scratch database, migrates it, syncs the models, fills it with jobs,
then runs the listing (modules.jobs.reads.list_jobs, the code GET /v1/jobs runs) for each case,
captures the SQL it sends and prints `EXPLAIN (ANALYZE, BUFFERS)` of that very statement.
docs/data-model.md quotes the output.

The server is FORGE_EXPLAIN_DATABASE_URL (a role that may create databases), by default the
local one; the scratch database is `forge_explain` on it and is dropped at the end.
"""

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from alembic import command
from psycopg import sql
from pydantic import PostgresDsn
from sqlalchemy import Connection, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from modules.catalog.sync import sync
from modules.jobs import reads
from modules.persistence.engine import create_sync_database_engine
from modules.persistence.migrate import alembic_config
from modules.persistence.models import Model
from modules.persistence.statuses import JobStatus
from modules.settings import Settings
from modules.testing.databases import libpq_url, recreate_database

SERVER = os.environ.get(
    "FORGE_EXPLAIN_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "forge_explain"
PAGE = 20

# Jobs spread over 30 days, one in fifty on the second model; statuses as a busy deployment
# has them: nearly all final, a few hundred active.
FILL = """
INSERT INTO jobs (model_id, owner, status, input, attempts, created_at, started_at, finished_at,
                  lease_owner, lease_expires_at)
SELECT model_id, 'explain', status, jsonb_build_object('prompt', 'job ' || n), attempts, created_at,
       CASE WHEN attempts > 0 THEN created_at + interval '1 second' END,
       CASE WHEN status IN ('succeeded', 'failed', 'canceled')
            THEN created_at + interval '5 seconds' END,
       CASE WHEN status IN ('running', 'canceling') THEN 'explain:1' END,
       CASE WHEN status IN ('running', 'canceling') THEN now() + interval '30 seconds' END
FROM (
    SELECT n,
           CASE WHEN n % 50 = 7 THEN :icon ELSE :image END AS model_id,
           CASE WHEN n <= 200 THEN 'queued'
                WHEN n <= 250 THEN 'running'
                WHEN n % 40 = 7 THEN 'failed'
                WHEN n % 70 = 0 THEN 'canceled'
                ELSE 'succeeded' END AS status,
           CASE WHEN n <= 200 THEN 0 ELSE 1 END AS attempts,
           now() - n * interval '25.92 seconds' AS created_at
    FROM generate_series(1, :count) AS n
) AS generated
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="explain-jobs", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="how many (%(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)

    url = recreate_database(SERVER, DATABASE)
    settings = Settings.model_validate({"database_url": PostgresDsn(url)})
    with alembic_config(settings) as config:
        command.upgrade(config, "head")
    engine = create_sync_database_engine(settings)
    try:
        with Session(engine) as session, session.begin():
            sync(session)
            models = dict(session.execute(select(Model.name, Model.id)).all())
            session.execute(
                text(FILL),
                {"image": models["stub-image"], "icon": models["stub-icon"], "count": args.jobs},
            )
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE jobs")
            )
        out = sys.stdout
        out.write(f"{args.jobs} jobs in {DATABASE}; PostgreSQL {_server_version(engine)}\n")
        for title, options in _cases(engine):
            out.write(f"\n## {title}\n\n{_explain(engine, options)}\n")
    finally:
        engine.dispose()
        if not args.keep:
            _drop()
    return 0


def _cases(engine: Engine) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "Newest first, no filter (the first page)", {}
    deep = _cursor_at(engine, model=None, position=50_000)
    yield "Newest first, no filter, with a cursor 50,000 jobs deep", {"cursor": deep}
    yield "status=succeeded", {"status": JobStatus.SUCCEEDED}
    yield "status=queued (a rare status)", {"status": JobStatus.QUEUED}
    yield "model=stub-icon@1 (one job in fifty)", {"model": "stub-icon@1"}
    icon_deep = _cursor_at(engine, model="stub-icon@1", position=1_000)
    yield "model=stub-icon@1, with a cursor 1,000 jobs deep", {
        "model": "stub-icon@1",
        "cursor": icon_deep,
    }
    yield "model=stub-icon (every version of the name)", {"model": "stub-icon"}
    yield "status=failed and model=stub-icon@1", {
        "status": JobStatus.FAILED,
        "model": "stub-icon@1",
    }


def _cursor_at(engine: Engine, *, model: str | None, position: int) -> str:
    """The cursor a client holds after paging `position` jobs deep (of `model`'s, if given)."""
    name, _, version = (model or "").partition("@")
    with engine.connect() as connection:
        created_at, job_id = connection.execute(
            text(
                "SELECT jobs.created_at, jobs.id FROM jobs JOIN models ON models.id = jobs.model_id"
                " WHERE :name = '' OR (models.name = :name AND models.version = :version)"
                " ORDER BY jobs.created_at DESC, jobs.id DESC OFFSET :skip LIMIT 1"
            ),
            {"name": name, "version": version, "skip": position - 1},
        ).one()
    return reads.encode_cursor(created_at, job_id)


def _explain(engine: Engine, options: dict[str, Any]) -> str:
    """EXPLAIN ANALYZE of the listing query that list_jobs sends (its first statement; the
    others load the page's steps and artifacts)."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Connection, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    with Session(engine) as session:
        with _listening(engine, capture):
            reads.list_jobs(session, owner="explain", limit=PAGE, **options)
        statement, parameters = statements[0]
        connection = session.connection()
        rows = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters
        ).scalars()
        # The column list is every column of jobs and models: long, and not what the plan is about.
        query = "SELECT jobs.*, models.* " + statement[statement.index("FROM") :]
        return "\n".join([" ".join(query.split()), "", *rows])


@contextmanager
def _listening(engine: Engine, listener: Any) -> Iterator[None]:
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def _server_version(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("SHOW server_version")).scalar_one())


def _drop() -> None:
    with psycopg.connect(libpq_url(SERVER), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )


if __name__ == "__main__":
    sys.exit(main())
