"""`forge-api`: the api process's command line (the api PEX's entry point)."""

import argparse

from modules.observability.logs import RequestIdFilter, logging_config
from modules.observability.metrics import remove_multiprocess_dir, use_multiprocess_dir
from modules.settings import settings_or_exit

PROGRAM = "forge-api"
APP = "services.api.app:app"
# Below Compose's 10 s stop grace period: in-flight requests finish, then the process exits.
GRACEFUL_SHUTDOWN_S = 8


def serve() -> int:
    settings = settings_or_exit(PROGRAM)
    # Workers are separate processes: their metrics must go through shared files.
    metrics_dir = use_multiprocess_dir(PROGRAM) if settings.api_workers > 1 else None
    import uvicorn  # after the metrics mode is chosen: importing the app creates metrics

    try:
        uvicorn.run(
            APP,
            host=settings.api_host,
            port=settings.api_port,
            workers=settings.api_workers,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Forge's HTTP API.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="serve the API (the default)")
    args = parser.parse_args(argv)
    match args.command:
        case None | "serve":
            return serve()
    parser.error(f"unknown command {args.command!r}")


if __name__ == "__main__":
    raise SystemExit(main())
