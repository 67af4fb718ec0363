"""An in-memory StepContext: what a runner reported and stored, for tests of runners alone
(the executor's context, with the database and S3 behind it, is tested with the executor)."""

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modules.runners.base import Runner, StepCanceled


@dataclass(frozen=True)
class Progress:
    step: str
    fraction: float
    message: str | None


@dataclass(frozen=True)
class StoredArtifact:
    step: str
    data: bytes
    content_type: str


@dataclass
class RecordingContext:
    """Records progress, logs, artifacts and sleeps, each with the step it came from.
    `request_cancel()` (from any thread) makes `raise_if_canceled()` raise and wakes a
    running `sleep()`, which then raises."""

    step: str = ""
    position: int = 0
    job_id: uuid.UUID = field(default_factory=uuid.uuid4)
    progress_reports: list[Progress] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)
    artifacts: dict[str, StoredArtifact] = field(default_factory=dict)
    sleeps: list[float] = field(default_factory=list)
    _canceled: threading.Event = field(default_factory=threading.Event)

    def progress(self, fraction: float, message: str | None = None) -> None:
        self.progress_reports.append(Progress(self.step, fraction, message))

    def log(self, message: str) -> None:
        self.logs.append((self.step, message))

    def store_artifact(self, name: str, data: bytes, content_type: str) -> None:
        self.artifacts[name] = StoredArtifact(self.step, data, content_type)

    def raise_if_canceled(self) -> None:
        if self._canceled.is_set():
            raise StepCanceled(f"step {self.step!r} canceled")

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._canceled.wait(seconds):
            raise StepCanceled(f"step {self.step!r} canceled")

    def request_cancel(self) -> None:
        self._canceled.set()


def run_plan(
    runner: Runner, input: Mapping[str, Any], context: RecordingContext | None = None
) -> RecordingContext:
    """Every step of the runner's plan for `input`, in order, as the executor runs them. An
    exception from a step ends the run: pass `context` to see what was recorded before it."""
    context = context or RecordingContext()
    for position, step in enumerate(runner.plan(input)):
        context.step, context.position = step, position
        runner.run_step(step, input, context)
    return context
