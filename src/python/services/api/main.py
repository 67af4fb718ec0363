"""`forge-api`: the api process's command line (the api PEX's entry point).

Each command imports what it runs inside its function: `serve` (the uvicorn supervisor, when
there are several workers) has no use for Alembic or boto3, which take ~0.25 s to import.
"""

import argparse
import logging

import uvicorn

from modules.observability.logs import (
    RequestIdFilter,
    apply_process_settings,
    configure_logging,
    logging_config,
)
from modules.observability.multiprocess import remove_multiprocess_dir, use_multiprocess_dir
from modules.settings import settings_or_exit

logger = logging.getLogger(__name__)

PROGRAM = "forge-api"
APP = "services.api.app:app"
# Below Compose's 10 s stop grace period: in-flight requests finish, then the process exits.
GRACEFUL_SHUTDOWN_S = 8


def serve(app: str = APP) -> int:
    """Serve `app` (an import string; Forge's api unless a benchmark serves a variant)."""
    settings = settings_or_exit(PROGRAM)
    # Workers are separate processes: their metrics must go through shared files.
    metrics_dir = use_multiprocess_dir(PROGRAM) if settings.api_workers > 1 else None
    apply_process_settings()  # uvicorn configures logging itself, from the mapping below
    try:
        uvicorn.run(
            app,
            host=settings.api_host,
            port=settings.api_port,
            workers=settings.api_workers,
            loop="uvloop",
            http="httptools",
            log_config=logging_config(
                "api",
                settings.log_level,
                {"request_id": f"{RequestIdFilter.__module__}.{RequestIdFilter.__qualname__}"},
            ),
            access_log=False,  # the request middleware writes access lines, with request IDs
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    finally:
        if metrics_dir:
            remove_multiprocess_dir(metrics_dir)
    return 0


def init_storage() -> int:
    """Create the artifact bucket unless it exists (idempotent): Compose's one-shot."""
    from botocore.exceptions import BotoCoreError, ClientError

    from modules.storage.s3 import ensure_bucket, make_s3_client

    settings = settings_or_exit(PROGRAM)
    configure_logging("init-storage", settings.log_level, stream="stderr")
    try:
        created = ensure_bucket(make_s3_client(settings), settings.s3_bucket)
    except (BotoCoreError, ClientError) as error:
        where = f"{settings.s3_endpoint_url} bucket {settings.s3_bucket!r}"
        logger.error("init-storage failed for %s: %s", where, error)
        return 1
    outcome = "created" if created else "already exists"
    logger.info("bucket %r %s", settings.s3_bucket, outcome)
    return 0


def sync_models() -> int:
    """Insert the catalog's models that the database lacks (idempotent, run after `migrate`),
    refusing a published version whose content changed."""
    from sqlalchemy.orm import Session

    from modules.catalog.loading import InvalidCatalog
    from modules.catalog.sync import ModelChanged, sync
    from modules.persistence.engine import DatabaseUnreachable, connect, create_sync_database_engine
    from modules.persistence.migrate import EXIT_UNAVAILABLE

    settings = settings_or_exit(PROGRAM)
    configure_logging("sync-models", settings.log_level, stream="stderr")
    engine = create_sync_database_engine(settings)
    try:
        with connect(engine) as connection, Session(bind=connection) as session:
            summary = sync(session)
            session.commit()
    except DatabaseUnreachable as error:
        logger.error("%s", error)
        return EXIT_UNAVAILABLE
    except (InvalidCatalog, ModelChanged) as error:
        logger.error("sync-models refused: %s", error)
        return 1
    finally:
        engine.dispose()
    logger.info("models: %s", summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Forge's HTTP API.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="serve the API (the default)")
    commands.add_parser(
        "migrate", help="run database migrations (`migrate --help`)", add_help=False
    ).add_argument("args", nargs=argparse.REMAINDER)
    commands.add_parser("init-storage", help="create the artifact bucket if it is missing")
    commands.add_parser("sync-models", help="insert the catalog's new models into the database")
    commands.add_parser(
        "keys", help="create, list and revoke API keys (`keys --help`)", add_help=False
    ).add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    match args.command:
        case None | "serve":
            return serve()
        case "migrate":
            from modules.persistence import migrate

            return migrate.main(args.args)
        case "init-storage":
            return init_storage()
        case "sync-models":
            return sync_models()
        case "keys":
            from services.api import keys_command

            return keys_command.main(args.args)
    parser.error(f"unknown command {args.command!r}")


if __name__ == "__main__":
    raise SystemExit(main())
