"""The echo runner ("echo"): one step that stores the job's input back as `output.json`.

The smallest job Forge runs: a claim, one step, one small artifact and the job's end, with no
model's work in the way. It is what `make bench-jobs` measures the platform's own cost with, and
a quick way to try the API.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from modules.runners.base import StepContext

STEP = "echo"
OUTPUT = "output.json"


class EchoRunner:
    def plan(self, input: Mapping[str, Any]) -> Sequence[str]:
        return (STEP,)

    def run_step(self, step: str, input: Mapping[str, Any], context: StepContext) -> None:
        if step != STEP:
            raise ValueError(f"the echo runner has no step {step!r}")
        context.raise_if_canceled()
        # Canonical JSON: the same input gives the same bytes, so a rerun stores the same object.
        output = json.dumps(input, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        context.store_artifact(OUTPUT, output.encode(), "application/json")
