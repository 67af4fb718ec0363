"""How `--wait` and `--follow` show a job's events: a progress bar per step on a terminal, one
plain line per event otherwise, one JSON object per line with `--json`."""

import json
import sys
from types import TracebackType
from typing import Protocol, Self

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.text import Text

from modules.client.errors import ForgeError
from modules.contract.v1 import EventOut


class Display(Protocol):
    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def show(self, event: EventOut) -> None: ...


def reconnecting(after: int, error: ForgeError) -> None:
    """Said on stderr whatever the display: stdout stays the events."""
    sys.stderr.write(f"forge: {error}; resuming after event {after}\n")
    sys.stderr.flush()


def describe(event: EventOut) -> str:
    """One line for a person."""
    payload = event.payload
    step = payload.get("step")
    match event.type:
        case "job.started":
            return f"job started (attempt {payload.get('attempt')})"
        case "job.requeued":
            return f"job requeued: {payload.get('reason')}"
        case "job.failed":
            return f"job failed: {error_message(payload.get('error'))}"
        case "step.started":
            return f"{step}: started"
        case "step.progress":
            fraction = payload.get("fraction")
            percent = f"{fraction:.0%}" if isinstance(fraction, int | float) else "?"
            message = payload.get("message")
            return f"{step}: {percent}" + (f" {message}" if message else "")
        case "step.log":
            return f"{step}: {payload.get('message')}"
        case "step.succeeded":
            seconds = payload.get("seconds")
            took = f" in {seconds:.2f} s" if isinstance(seconds, int | float) else ""
            return f"{step}: succeeded{took}"
        case "step.failed" | "step.canceled":
            state = event.type.removeprefix("step.")
            error = payload.get("error")
            return f"{step}: {state}" + (f": {error_message(error)}" if error else "")
        case "artifact.stored":
            return (
                f"{step}: stored {payload.get('name')} ({payload.get('size_bytes')} bytes, "
                f"{payload.get('content_type')})"
            )
    if event.type.startswith("job."):
        return f"job {event.type.removeprefix('job.')}"
    return f"{event.type} {json.dumps(payload)}"


def error_message(error: object) -> str:
    """A job's or step's error (`{"type": ..., "message": ...}`) as a line."""
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else json.dumps(error)


class JsonLines:
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    def show(self, event: EventOut) -> None:
        sys.stdout.write(event.model_dump_json() + "\n")
        sys.stdout.flush()


class PlainLines(JsonLines):
    def show(self, event: EventOut) -> None:
        sys.stdout.write(describe(event) + "\n")
        sys.stdout.flush()


class ProgressBars:
    """A bar per step as steps start; job transitions, logs and artifacts print above them."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[message]}"),
            console=console,
        )
        self._steps: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def show(self, event: EventOut) -> None:
        step = event.payload.get("step")
        if not isinstance(step, str):
            self._progress.console.print(Text(describe(event), style="bold"))
            return
        task = self._steps.get(step)
        if task is None:
            task = self._steps[step] = self._progress.add_task(step, total=1.0, message="")
        match event.type:
            case "step.progress":
                fraction = event.payload.get("fraction")
                message = event.payload.get("message")
                self._progress.update(
                    task,
                    completed=fraction if isinstance(fraction, int | float) else None,
                    message=message if isinstance(message, str) else "",
                )
            case "step.succeeded":
                self._progress.update(task, completed=1.0, message="done")
            case "step.started":
                self._progress.update(task, message="started")
            case "step.failed" | "step.canceled":
                self._progress.update(task, message=event.type.removeprefix("step."))
                self._progress.console.print(Text(describe(event), style="red"))
            case _:
                self._progress.console.print(Text(describe(event), style="dim"))


def for_output(json_output: bool, console: Console) -> Display:
    if json_output:
        return JsonLines()
    if console.is_terminal:
        return ProgressBars(console)
    return PlainLines()
