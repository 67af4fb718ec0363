"""Is the database's schema the one this code was written for?

The expected revision is Alembic's head among the migrations this process carries (the
`migrations` package), read once; the database's is what `alembic_version` records.
"""

from dataclasses import dataclass
from importlib.resources import as_file, files

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection


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

    def verify(self, connection: Connection) -> str:
        """'at revision X' when the database is at the head; else raises SchemaMismatch."""
        current = frozenset(MigrationContext.configure(connection).get_current_heads())
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
