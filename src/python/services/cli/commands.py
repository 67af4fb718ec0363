"""What each `forge` command does. Each returns its exit status; errors are raised (main.py
turns them into one line and a status)."""

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from modules.client.errors import ForgeError
from modules.client.sync import ForgeClient
from modules.contract.v1 import JobList, JobOut
from modules.persistence.statuses import JobStatus
from services.cli import display
from services.cli.inputs import job_input

# How a followed job ended, as the exit status (DEV.md lists them all).
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_CANCELED = 3
_BY_STATUS = {
    JobStatus.SUCCEEDED: EXIT_SUCCEEDED,
    JobStatus.FAILED: EXIT_FAILED,
    JobStatus.CANCELED: EXIT_CANCELED,
}


@dataclass(frozen=True)
class Context:
    client: ForgeClient
    json: bool
    console: Console

    def line(self, text: str) -> None:
        sys.stdout.write(text + "\n")

    def dump(self, body: BaseModel | list[Any] | dict[str, Any]) -> None:
        """--json: the API's body as it came."""
        if isinstance(body, BaseModel):
            self.line(body.model_dump_json(indent=2))
        else:
            self.line(json.dumps(body, indent=2))


# --- models ---


def models_list(context: Context) -> int:
    models = context.client.list_models()
    if context.json:
        context.dump([model.model_dump(mode="json") for model in models])
        return 0
    rows = [(model.ref, model.task, model.description) for model in models]
    _table(context, ("MODEL", "TASK", "DESCRIPTION"), rows)
    return 0


def models_show(context: Context, name: str) -> int:
    model = context.client.get_model(name)
    if context.json:
        context.dump(model)
        return 0
    context.line(f"{model.ref} ({model.task}, runner {model.runner})")
    context.line(model.description)
    context.line("input schema:")
    context.line(json.dumps(model.input_schema, indent=2))
    context.line("defaults: " + json.dumps(model.default_parameters))
    return 0


# --- jobs ---


def jobs_submit(
    context: Context,
    model: str,
    pairs: list[str],
    input_file: str | None,
    priority: int,
    idempotency_key: str | None,
    wait: bool,
) -> int:
    job = context.client.submit(
        model, job_input(pairs, input_file), priority=priority, idempotency_key=idempotency_key
    )
    if not wait:
        if context.json:
            context.dump(job)
        else:
            context.line(f"{job.id} {job.status}")
        return 0
    if not context.json:
        context.line(f"job {job.id} ({job.model}) submitted")
    return _follow(context, job, after=0, show_events=not context.json)


def jobs_get(context: Context, job_id: str) -> int:
    job = context.client.get_job(job_id)
    if context.json:
        context.dump(job)
        return 0
    context.line(f"{job.id} {job.model} {job.status}")
    for step in job.steps:
        context.line(f"  step {step.position} {step.name}: {step.status}")
    for artifact in job.output:
        context.line(f"  artifact {artifact.name} ({artifact.size_bytes} bytes) {artifact.url}")
    if job.error:
        context.line(f"  error: {display.error_message(job.error)}")
    return 0


def jobs_list(
    context: Context, status: JobStatus | None, model: str | None, limit: int, every: bool
) -> int:
    """The newest `limit` jobs; with `every`, page after page to the oldest (--json: the pages'
    jobs in one body, as one page would have them)."""
    page = context.client.list_jobs(status=status, model=model, limit=limit)
    jobs = list(page.data)
    while every and (following := context.client.next_page(page)) is not None:
        page = following
        jobs.extend(page.data)
    if context.json:
        context.dump(JobList(data=jobs, next=page.next))
        return 0
    rows = [(str(job.id), job.model, job.status.value, job.created_at.isoformat()) for job in jobs]
    _table(context, ("JOB", "MODEL", "STATUS", "CREATED"), rows)
    if page.next is not None:
        sys.stderr.write(f"forge: older jobs not shown; --all lists them ({len(jobs)} shown)\n")
    return 0


def jobs_cancel(context: Context, job_id: str) -> int:
    job = context.client.cancel(job_id)
    if context.json:
        context.dump(job)
    else:
        context.line(f"{job.id} {job.status}")
    return 0


def jobs_events(context: Context, job_id: str, after: int, follow: bool) -> int:
    if follow:
        return _follow(context, context.client.get_job(job_id), after=after, show_events=True)
    shown = display.JsonLines() if context.json else display.PlainLines()
    while page := context.client.events_page(job_id, after=after).data:
        for event in page:
            shown.show(event)
        after = page[-1].seq
    return 0


def _follow(context: Context, job: JobOut, after: int, show_events: bool) -> int:
    """Until the job's terminal event; how the job ended is the exit status."""
    with display.for_output(context.json, context.console) as shown:
        for event in context.client.stream_events(
            job.id, after=after, on_reconnect=display.reconnecting
        ):
            if show_events:
                shown.show(event)
    final = context.client.get_job(job.id)
    if context.json and not show_events:
        context.dump(final)  # submit --wait --json: the job as it ended
    elif not context.json:
        summary = f"job {final.id} {final.status}"
        if final.error:
            summary += f": {display.error_message(final.error)}"
        context.line(summary)
    code = _BY_STATUS.get(final.status)
    if code is None:  # the stream ends only once the job has
        raise ForgeError(f"the event stream ended while job {final.id} is {final.status}")
    return code


# --- artifacts ---


def artifacts_download(context: Context, job_id: str, directory: Path) -> int:
    downloads = context.client.download_artifacts(job_id, directory)
    if context.json:
        context.dump(
            [
                {
                    "name": download.artifact.name,
                    "path": str(download.path),
                    "sha256": download.artifact.sha256,
                    "size_bytes": download.artifact.size_bytes,
                }
                for download in downloads
            ]
        )
        return 0
    for download in downloads:
        size = download.artifact.size_bytes
        context.line(f"{download.path} ({size} bytes, sha256 verified)")
    return 0


def _table(context: Context, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Aligned columns on a terminal; tab-separated lines (for cut, awk) otherwise."""
    if not context.console.is_terminal:
        for row in (columns, *rows):
            context.line("\t".join(row))
        return
    table = Table(*columns, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*row)
    context.console.print(table)
