"""`forge`: Forge's command line (forge.pex). `forge --help` lists the commands; DEV.md shows
them and the exit statuses."""

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from modules.client.errors import ApiError, ChecksumMismatch, ForgeError, InvalidRequest
from modules.client.sync import ForgeClient
from modules.client.wire import API_KEY_VARIABLE
from modules.persistence.statuses import JobStatus
from services.cli import commands
from services.cli.inputs import InvalidInput

PROGRAM = "forge"
API_URL_VARIABLE = "FORGE_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000"

# Exit statuses besides a followed job's (commands.py: 0 succeeded, 1 failed, 3 canceled).
EXIT_USAGE = 2  # a bad command line, or the API refused the request (4xx)
EXIT_CHECKSUM = 65  # EX_DATAERR: a download does not match its recorded sha256
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the API is unreachable or failed (5xx)
EXIT_INTERRUPTED = 130  # Ctrl-C

EPILOG = f"""exit status:
  0   done (with --wait or --follow: the job succeeded)
  1   the job failed
  3   the job was canceled
  2   a usage error, or a request the API refused (4xx)
  65  a download does not match its recorded sha256
  69  the API is unreachable or failed (5xx)
  130 interrupted
the API's URL: --api-url, else ${API_URL_VARIABLE}, else {DEFAULT_API_URL}
the API key: ${API_KEY_VARIABLE} (`forge-api keys create` makes one)"""


def _common(defaults: dict[str, object] | None) -> argparse.ArgumentParser:
    """The options every command takes, before it (with `defaults`) and after it (without: an
    absent option must not undo one given before the command)."""
    options = argparse.ArgumentParser(add_help=False)
    if defaults is None:
        options.argument_default = argparse.SUPPRESS
    options.add_argument("--api-url", help=f"the API's base URL (${API_URL_VARIABLE})")
    options.add_argument("--json", action="store_true", help="machine-readable output")
    options.add_argument("--timeout", type=float, help="seconds a request may take (default 10)")
    options.set_defaults(**(defaults or {}))
    return options


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Forge's command line: models, jobs and their artifacts.",
        epilog=EPILOG,
        parents=[
            _common(
                {
                    "api_url": os.environ.get(API_URL_VARIABLE, DEFAULT_API_URL),
                    "json": False,
                    "timeout": 10.0,
                }
            )
        ],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = _common(None)
    groups = root.add_subparsers(dest="group", metavar="COMMAND", required=True)

    models = groups.add_parser("models", help="the models jobs can run").add_subparsers(
        dest="command", metavar="COMMAND", required=True
    )
    models.add_parser("list", parents=[common], help="every model, every version")
    show = models.add_parser("show", parents=[common], help="a model's input schema and defaults")
    show.add_argument("name", help="NAME (its newest version) or NAME@VERSION")

    jobs = groups.add_parser("jobs", help="submit, follow, list and cancel jobs").add_subparsers(
        dest="command", metavar="COMMAND", required=True
    )
    submit = jobs.add_parser("submit", parents=[common], help="submit a job")
    submit.add_argument("model", help="NAME or NAME@VERSION")
    submit.add_argument(
        "-i",
        "--input",
        dest="pairs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input value, JSON if it parses (seed=7), else text (prompt=a red fox)",
    )
    submit.add_argument("--input-file", help="the input as a JSON object (- for stdin)")
    submit.add_argument("--priority", type=int, default=0, help="0 to 9, higher runs first")
    submit.add_argument("--idempotency-key", help="resubmitting with it returns the first job")
    submit.add_argument(
        "--wait", action="store_true", help="show progress until the job ends; exit as it ended"
    )
    for name, text in (("get", "a job"), ("cancel", "cancel a job")):
        jobs.add_parser(name, parents=[common], help=text).add_argument("job", help="job ID")
    listing = jobs.add_parser("list", parents=[common], help="jobs, newest first")
    listing.add_argument("--status", type=JobStatus, choices=list(JobStatus))
    listing.add_argument("--model", help="NAME or NAME@VERSION")
    listing.add_argument(
        "--limit", type=int, default=20, help="1 to 100 (default 20); with --all, per request"
    )
    listing.add_argument(
        "--all", action="store_true", dest="every", help="every job, not only the newest --limit"
    )
    events = jobs.add_parser("events", parents=[common], help="a job's events")
    events.add_argument("job", help="job ID")
    events.add_argument("--after", type=int, default=0, help="only events after this seq")
    events.add_argument(
        "-f", "--follow", action="store_true", help="until the job ends; exit as it ended"
    )

    artifacts = groups.add_parser("artifacts", help="a job's files").add_subparsers(
        dest="command", metavar="COMMAND", required=True
    )
    download = artifacts.add_parser(
        "download", parents=[common], help="download every artifact, verifying its sha256"
    )
    download.add_argument("job", help="job ID")
    download.add_argument("-o", "--output", default=".", help="directory (default: here)")
    return root


def run(args: argparse.Namespace, context: commands.Context) -> int:
    match args.group, args.command:
        case "models", "list":
            return commands.models_list(context)
        case "models", "show":
            return commands.models_show(context, args.name)
        case "jobs", "submit":
            return commands.jobs_submit(
                context,
                args.model,
                args.pairs,
                args.input_file,
                args.priority,
                args.idempotency_key,
                args.wait,
            )
        case "jobs", "get":
            return commands.jobs_get(context, args.job)
        case "jobs", "list":
            return commands.jobs_list(context, args.status, args.model, args.limit, args.every)
        case "jobs", "cancel":
            return commands.jobs_cancel(context, args.job)
        case "jobs", "events":
            return commands.jobs_events(context, args.job, args.after, args.follow)
        case "artifacts", "download":
            return commands.artifacts_download(context, args.job, Path(args.output))
    raise AssertionError(f"no command {args.group} {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        with ForgeClient(args.api_url, timeout=args.timeout) as client:
            return run(args, commands.Context(client, args.json, console))
    except (InvalidInput, InvalidRequest) as error:
        return _fail(str(error), EXIT_USAGE)
    except ApiError as error:
        return _fail(str(error), EXIT_UNAVAILABLE if error.status >= 500 else EXIT_USAGE)
    except ChecksumMismatch as error:
        return _fail(str(error), EXIT_CHECKSUM)
    except ForgeError as error:  # ApiUnreachable, or a stream that ended early
        return _fail(str(error), EXIT_UNAVAILABLE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"{PROGRAM}: {message}\n")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
