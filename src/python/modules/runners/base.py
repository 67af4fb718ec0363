"""The contract between the job executor and the runners.

`input` is the job's effective input: the model's default_parameters overlaid by the submitted
input, already validated against the model's JSON Schema. A step may run in another process
than the one before it (a redelivered job resumes at its first unfinished step), so each step
derives what it needs from `input`, deterministically, never from another step's memory. Any
exception other than StepFailed or StepCanceled is an internal error.
"""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class StepFailed(Exception):
    """The runner's own failure of a step; its message is shown to users."""


class StepCanceled(Exception):
    """Raised by `StepContext.raise_if_canceled()` and `StepContext.sleep()` once the job's
    cancellation is requested."""


class StepContext(Protocol):
    """What a running step may do: report, store its output, and notice cancellation."""

    job_id: uuid.UUID
    step: str  # the step's name
    position: int  # the step's 0-based position in the plan

    def progress(self, fraction: float, message: str | None = None) -> None:
        """How far this step is, from 0 to 1."""

    def log(self, message: str) -> None: ...

    def store_artifact(self, name: str, data: bytes, content_type: str) -> None: ...

    def raise_if_canceled(self) -> None: ...

    def sleep(self, seconds: float) -> None:
        """Wait, raising StepCanceled as soon as cancellation is requested."""


class Runner(Protocol):
    def plan(self, input: Mapping[str, Any]) -> Sequence[str]:
        """The ordered step names for this input."""

    def run_step(self, step: str, input: Mapping[str, Any], context: StepContext) -> None: ...
