"""`forge-api keys`: create, list and revoke API keys (FORGE_DATABASE_URL).

A new key is printed once, alone on the last line of stdout, so a script can capture it
(`key=$(forge-api keys create --name ci | tail -n 1)`); log lines go to stderr."""

import argparse
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy.orm import Session

from modules.auth import keys
from modules.observability.logs import configure_logging
from modules.persistence.engine import DatabaseUnreachable, connect, create_sync_database_engine
from modules.persistence.migrate import EXIT_UNAVAILABLE
from modules.settings import settings_or_exit

logger = logging.getLogger(__name__)

PROGRAM = "forge-api keys"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Manage the /v1 API's keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it (once)")
    _name_and_owner(create)
    commands.add_parser("list", help="list the keys (prefixes, never the keys)")
    revoke = commands.add_parser("revoke", help="revoke a key: it is refused from then on")
    revoke.add_argument("prefix", help="the key's prefix, e.g. fk_ab12cd34")
    ensure = commands.add_parser(
        "ensure",
        help="create a key into FILE unless FILE holds a valid one (idempotent: for a one-shot)",
    )
    _name_and_owner(ensure)
    ensure.add_argument("--file", type=Path, required=True)
    return parser


def _name_and_owner(command: argparse.ArgumentParser) -> None:
    command.add_argument("--name", required=True, help="what the key is for")
    command.add_argument("--owner", help="whose jobs it acts on (default: the name)")


def main(argv: list[str] | None = None, stdout: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    settings = settings_or_exit("forge-api")
    configure_logging("keys", settings.log_level, stream="stderr")
    engine = create_sync_database_engine(settings)
    try:
        with connect(engine) as connection, Session(bind=connection) as session:
            status = _run(session, args, stdout)
            session.commit()
    except DatabaseUnreachable as error:
        logger.error("%s", error)
        return EXIT_UNAVAILABLE
    finally:
        engine.dispose()
    return status


def _run(session: Session, args: argparse.Namespace, stdout: TextIO) -> int:
    match args.command:
        case "create":
            return _create(session, args.name, args.owner, stdout)
        case "list":
            return _list(session, stdout)
        case "revoke":
            return _revoke(session, args.prefix)
        case _:
            return _ensure(session, args.name, args.owner, args.file)


def _create(session: Session, name: str, owner: str | None, stdout: TextIO) -> int:
    new = keys.create(session, name=name, owner=owner or name)
    logger.info("created key %s (name %r, owner %r)", new.row.prefix, name, new.row.owner)
    print(f"# key {new.row.prefix} for owner {new.row.owner}: shown once, keep it", file=stdout)
    print(new.key, file=stdout)
    return 0


def _list(session: Session, stdout: TextIO) -> int:
    print("prefix\tname\towner\tcreated\tlast_used\trevoked", file=stdout)
    for row in keys.all_keys(session):
        times = [_when(row.created_at), _when(row.last_used_at), _when(row.revoked_at)]
        print("\t".join([row.prefix, row.name, row.owner, *times]), file=stdout)
    return 0


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(timespec="seconds")


def _revoke(session: Session, prefix: str) -> int:
    row = keys.revoke(session, prefix)
    if row is None:
        logger.error("no key %s (`keys list` shows them)", prefix)
        return 1
    logger.info("key %s (owner %r) revoked at %s", prefix, row.owner, _when(row.revoked_at))
    return 0


def _ensure(session: Session, name: str, owner: str | None, path: Path) -> int:
    if path.is_file():
        try:
            keys.verify(session, path.read_text().strip())
        except keys.KeyRefused as refused:
            logger.info("%s holds a key that is no longer valid (%s): a new one", path, refused)
        else:
            logger.info("API key %r: in %s already", name, path)
            return 0
    new = keys.create(session, name=name, owner=owner or name)
    # Written before the commit: a failed write leaves no key nobody can read.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(new.key + "\n")
    logger.info("API key %s (owner %r) written to %s", new.row.prefix, new.row.owner, path)
    return 0
