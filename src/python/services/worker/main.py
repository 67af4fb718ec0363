"""forge-worker: run the worker, ping running workers, or use Celery's own CLI on this app.

forge-worker                     run the worker: prefork pool, JSON logs, /metrics, /healthz
forge-worker ping [--timeout S]  run health.ping on a worker through the broker, print the reply
forge-worker reconcile           take back jobs of dead workers, send messages for queued jobs
forge-worker celery ARGS...      Celery's CLI for this app, e.g. `forge-worker celery inspect ping`
"""

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from celery.apps.worker import Worker, install_worker_term_handler  # type: ignore[attr-defined]
from celery.bin.celery import celery as celery_cli
from celery.exceptions import OperationalError
from celery.exceptions import TimeoutError as ResultTimeoutError

from modules.observability.multiprocess import remove_multiprocess_dir, use_multiprocess_dir
from services.worker import celery_app
from services.worker.celery_app import app, settings
from services.worker.readiness import WorkerReadiness
from services.worker.tasks import PING

PROGRAM = "forge-worker"

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["celery"]:
        # Handed over verbatim (argparse would claim options such as --timeout); click exits.
        celery_cli.main(args=["--app", celery_app.__name__, *args[1:]], prog_name=PROGRAM)
    options = _parser().parse_args(args)
    if options.command == "ping":
        return _ping(options.timeout)
    if options.command == "reconcile":
        return _reconcile()
    return _run_worker()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Without a command: run the worker.")
    commands = parser.add_subparsers(dest="command")
    ping = commands.add_parser("ping", help=f"run {PING} on a worker and print its reply")
    ping.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for a reply (%(default)s)"
    )
    commands.add_parser(
        "reconcile", help="take back jobs whose worker died; send messages for queued jobs"
    )
    # Listed for --help only: main() hands `celery ...` to Celery before parsing.
    commands.add_parser("celery", help="Celery's command line for this app", add_help=False)
    return parser


def _ping(timeout: float) -> int:
    try:
        # Expires with the wait: a worker that starts later must not answer a ping nobody awaits.
        result = app.send_task(PING, expires=timeout)
        reply = result.get(timeout=timeout)
    except OperationalError as error:
        return _fail(f"ping: cannot reach the broker: {error}")
    except ResultTimeoutError:
        return _fail(f"ping: no worker answered {PING} within {timeout:g}s")
    sys.stdout.write(json.dumps(reply) + "\n")
    if reply.get("database") != "ok":  # e.g. a worker started with another FORGE_DATABASE_URL
        return _fail(f"ping: the worker answered, but its database is {reply.get('database')}")
    return 0


def _reconcile() -> int:
    from modules.observability.logs import configure_logging
    from services.worker import reconciler

    # No Celery worker starts here, so Celery's setup_logging signal never configures logging.
    configure_logging("reconciler", settings.log_level)
    # SIGTERM (docker stop, an orchestrator) stops it as Ctrl-C does: the loop ends, the endpoint
    # closes, exit 0. Without a handler, as PID 1 in a container it would ignore SIGTERM.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return reconciler.serve(settings)


def _run_worker() -> int:
    # Pool processes are forked: their metrics go through shared files, which prometheus-client
    # must know before it is first imported (by the modules imported below).
    metrics_dir = use_multiprocess_dir(PROGRAM)
    from modules.observability.metrics import set_build_info
    from services.worker import endpoint, task_metrics

    set_build_info("worker")
    task_metrics.start_at_zero(name for name in app.tasks if not name.startswith("celery."))
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    try:
        server = endpoint.serve(host, port, WorkerReadiness(settings).check)
    except OSError as error:
        remove_multiprocess_dir(metrics_dir)
        return _fail(f"cannot serve /metrics on {host}:{port}: {error.strerror}")
    try:
        worker = _Worker(app=app, loglevel=settings.log_level, quiet=True)  # quiet: no banner
        worker.endpoint = (host, server.server_port)  # the bound port, if 0 was asked for
        worker.start()
        return worker.exitcode or 0
    finally:
        server.shutdown()
        server.server_close()
        remove_multiprocess_dir(metrics_dir)


class _Worker(Worker):
    """Celery's worker program, keeping stdout to JSON lines."""

    endpoint: tuple[str, int]

    def on_start(self) -> None:
        super().on_start()
        # Logging is configured by now; the line names the port actually bound.
        logger.info("/healthz, /readyz and /metrics on http://%s:%d", *self.endpoint)
        # Celery stops sending print()s (task code and libraries do print) to logging once a
        # setup_logging receiver configures logging: redirect them as it does by default.
        self.app.log.redirect_stdouts(self.app.conf.worker_redirect_stdouts_level)
        # Its SIGTERM handler (how orchestrators stop workers) writes "worker: Warm shutdown"
        # to stdout as plain text: reinstall it without that line.
        install_worker_term_handler(self, verbose=False)


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROGRAM}: {message}\n")
    return os.EX_UNAVAILABLE
