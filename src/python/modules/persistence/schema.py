"""Is the database's schema the one this code was written for?

The expected revision is Alembic's head among the migrations this process carries (the
`migrations` package), read once; the database's is what `alembic_version` records.
"""

from dataclasses import dataclass
from importlib.resources import as_file, files

from alembic.script import ScriptDirectory
from psycopg.errors import UndefinedTable
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

# Alembic's default table (alembic/migrations/env.py keeps it). Read with one query rather than
# Alembic's MigrationContext, which reflects the catalog first: ~20 ms of CPU per check.
VERSION_TABLE = "alembic_version"


class SchemaMismatch(Exception):
    """The database is not at the expected revision; str() says how, naming both revisions."""


@dataclass(frozen=True)
class ExpectedSchema:
    heads: frozenset[str]
    # Every revision the carried migrations know: a database revision outside this set was
    # written by newer code (the database is ahead).
    known: frozenset[str]

    @classmethod
    def from_migrations(cls) -> "ExpectedSchema":
        with as_file(files("migrations")) as scripts:
            script = ScriptDirectory(str(scripts))
            return cls(
                heads=frozenset(script.get_heads()),
                known=frozenset(revision.revision for revision in script.walk_revisions()),
            )

    async def verify(self, connection: AsyncConnection) -> str:
        """'at revision X' when the database is at the head; else raises SchemaMismatch."""
        try:
            rows = await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        except ProgrammingError as error:
            if not isinstance(error.orig, UndefinedTable):
                raise
            current: frozenset[str] = frozenset()
        else:
            current = frozenset(rows.scalars())
        expected = _names(self.heads)
        if current == self.heads:
            return f"at revision {expected}"
        if not current:
            raise SchemaMismatch(f"not migrated: no revision applied, code expects {expected}")
        where = "behind" if current <= self.known else "ahead"
        raise SchemaMismatch(
            f"schema {where}: database at {_names(current)}, code expects {expected}"
        )


def _names(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions))
