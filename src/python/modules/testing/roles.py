"""A database with Forge's two roles, set up as the Compose stack sets up its own."""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from psycopg import sql
from pydantic import PostgresDsn
from sqlalchemy import make_url

from modules.persistence.migrate import alembic_config
from modules.settings import Settings
from modules.testing.databases import libpq_url, recreate_database
from modules.testing.isolation import execution_slot

# What the postgres container runs to create Forge's roles (compose/docker-compose.yml).
ROLES_SCRIPT = Path("compose/postgres/forge-roles.sh")


@contextmanager
def database_with_roles(admin_url: str, name: str) -> Iterator[tuple[str, str]]:
    """A new database `name` set up as the Compose stack sets up its own (ROLES_SCRIPT) and
    migrated to head by the owner role: yields (owner URL, application URL). Role names carry
    this test process's slot, as roles belong to the whole server."""
    owner, app = f"forge_owner_{execution_slot()}", f"forge_app_{execution_slot()}"
    url = recreate_database(admin_url, name)
    for role in (owner, app):
        _drop_role(admin_url, role)
    server = make_url(admin_url)
    subprocess.run(
        ["bash", str(ROLES_SCRIPT)],
        env={
            "PATH": os.environ.get("PATH", os.defpath),
            "PGHOST": server.host or "127.0.0.1",
            "PGPORT": str(server.port or 5432),
            "POSTGRES_USER": server.username or "postgres",
            "POSTGRES_DB": name,
            "DB_OWNER_ROLE": owner,
            "DB_OWNER_PASSWORD": "owner-test-password",
            "DB_APP_ROLE": app,
            "DB_APP_PASSWORD": "app-test-password",
        },
        check=True,
        capture_output=True,
    )
    owner_url, app_url = (
        make_url(url).set(username=role).render_as_string(hide_password=False)
        for role in (owner, app)
    )
    with alembic_config(Settings(database_url=PostgresDsn(owner_url))) as config:
        command.upgrade(config, "head")
    try:
        yield owner_url, app_url
    finally:
        recreate_database(admin_url, name)  # an empty database: the roles own nothing then
        for role in (owner, app):
            _drop_role(admin_url, role)


def _drop_role(admin_url: str, role: str) -> None:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
