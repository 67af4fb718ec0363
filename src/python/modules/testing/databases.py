"""Helpers for tests that need a PostgreSQL database of their own."""

import psycopg
from psycopg import sql
from sqlalchemy import make_url


def recreate_database(admin_url: str, name: str) -> str:
    """Drop database `name` (if it exists) and create it empty on the server of `admin_url`;
    returns the new database's SQLAlchemy URL."""
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        # FORCE: a test process killed mid-run may have left connections behind.
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def libpq_url(sqlalchemy_url: str) -> str:
    """The URL psycopg (libpq) takes for a SQLAlchemy `postgresql+psycopg://` URL."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
