"""`forge-migrate`: apply, inspect and write Forge's Alembic migrations.

Alembic is configured here rather than by an alembic.ini: the environment and revisions are the
`migrations` package (alembic/migrations in the repository), found with importlib.resources so
they work from inside a PEX; the database comes from the shared settings (FORGE_DATABASE_URL).
"""

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError

from modules.observability.logs import configure_logging
from modules.persistence.engine import DatabaseUnreachable
from modules.settings import Settings, settings_or_exit

logger = logging.getLogger(__name__)

PROGRAM = "forge-migrate"
# sysexits.h EX_UNAVAILABLE: a supervisor may retry, unlike a failed command (1).
EXIT_UNAVAILABLE = 69
# Where `revision` writes, relative to the repository root.
REPOSITORY_SCRIPTS = Path("alembic/migrations")
# Revision files must be valid module names: ruff, mypy and Pants treat them as code.
FILE_TEMPLATE = "rev_%(rev)s_%(slug)s"


@contextmanager
def alembic_config(settings: Settings) -> Iterator[Config]:
    """Alembic's configuration for the database in `settings` and the shipped migrations."""
    with as_file(files("migrations")) as packaged:
        yield _config(settings, packaged)


def _config(settings: Settings, scripts: Path) -> Config:
    # sys.stdout now, not when Alembic was imported: output follows redirection.
    config = Config(stdout=sys.stdout, attributes={"settings": settings})
    config.set_main_option("script_location", str(scripts))
    # Values go through configparser interpolation: '%' is written '%%'.
    config.set_main_option("file_template", FILE_TEMPLATE.replace("%", "%%"))
    return config


def _repository_scripts() -> Path:
    """The checkout's alembic/migrations: a new revision belongs in the repository, not in the
    copy a PEX unpacked."""
    scripts = Path.cwd() / REPOSITORY_SCRIPTS
    if not (scripts / "env.py").is_file():
        raise CommandError(
            f"revision must run from the repository root: {scripts}/env.py does not exist"
        )
    return scripts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Migrate Forge's PostgreSQL database (FORGE_DATABASE_URL)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    upgrade = commands.add_parser("upgrade", help="upgrade to a revision")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    downgrade = commands.add_parser("downgrade", help="downgrade to a revision")
    downgrade.add_argument("revision", nargs="?", default="-1")
    downgrade.add_argument("--sql", action="store_true", help="print the SQL instead (FROM:TO)")
    revision = commands.add_parser(
        "revision", help="write a new revision into alembic/migrations/versions"
    )
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument(
        "--autogenerate", action="store_true", help="diff the models against the database"
    )
    commands.add_parser("check", help="fail if the models and the migrations disagree")
    commands.add_parser("current", help="show the database's revision")
    return parser


def _skip_empty_autogenerate(
    context: MigrationContext, revision: object, directives: list[MigrationScript]
) -> None:
    """Alembic's process_revision_directives hook: write nothing when the models and the
    database agree (an empty revision would only have to be deleted again)."""
    if directives[0].upgrade_ops is None or directives[0].upgrade_ops.is_empty():
        directives.clear()


def _revision(settings: Settings, args: argparse.Namespace) -> None:
    config = _config(settings, _repository_scripts())
    hook = _skip_empty_autogenerate if args.autogenerate else None
    written = command.revision(
        config,
        message=args.message,
        autogenerate=args.autogenerate,
        process_revision_directives=hook,
    )
    if not written:
        raise CommandError(
            "the models and the database agree: no revision written (change a model first, "
            "or leave out --autogenerate for a hand-written migration)"
        )


def _upgrade(config: Config, revision: str) -> None:
    """`alembic upgrade`, saying so when there was nothing to do (Alembic prints nothing)."""
    applied: list[object] = []
    config.attributes["on_version_apply"] = lambda **step: applied.append(step["step"])
    command.upgrade(config, revision)
    if not applied:
        logger.info("already at %s; nothing to upgrade", revision)


def _run(settings: Settings, args: argparse.Namespace) -> None:
    if args.command == "revision":
        _revision(settings, args)
        return
    with alembic_config(settings) as config:
        match args.command:
            case "upgrade" if not args.sql:
                _upgrade(config, args.revision)
            case "upgrade":
                command.upgrade(config, args.revision, sql=True)
            case "downgrade":
                command.downgrade(config, args.revision, sql=args.sql)
            case "check":
                command.check(config)
            case "current":
                command.current(config)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = settings_or_exit(PROGRAM)
    # JSON lines like the services', on stderr: stdout is for what a command prints (`--sql`,
    # `current`). Alembic reports each step it runs at INFO.
    configure_logging("migrate", settings.log_level, stream="stderr")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # noise on every run
    try:
        _run(settings, args)
    except DatabaseUnreachable as error:
        logger.error("%s", error)
        return EXIT_UNAVAILABLE
    except CommandError as error:
        logger.error("%s", error)
        return 1
    return 0
