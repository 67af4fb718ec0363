"""The stub runner through an in-memory StepContext."""

import hashlib
import io
import json
import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from PIL import Image

from modules.runners.base import StepCanceled, StepFailed
from modules.runners.stub import SLEEP_SLICE_S, STEPS, StubRunner
from modules.testing.processes import python_subprocess_env
from modules.testing.step_context import RecordingContext, run_plan

INPUT: dict[str, Any] = {"prompt": "a lighthouse at dusk", "seed": 7, "width": 96, "height": 64}


def png_of(input: dict[str, Any]) -> bytes:
    return run_plan(StubRunner(), input).artifacts["image.png"].data


def test_the_plan_is_prepare_render_describe() -> None:
    assert list(StubRunner().plan(INPUT)) == ["prepare", "render", "describe"]


def test_the_same_input_gives_the_same_bytes() -> None:
    first, second = run_plan(StubRunner(), INPUT), run_plan(StubRunner(), INPUT)
    assert first.artifacts == second.artifacts
    assert first.logs == second.logs


def test_another_process_renders_the_same_bytes() -> None:
    """Nothing depends on the process (such as str hashing, randomized per process)."""
    script = (
        "import hashlib, sys; from modules.runners.stub import StubInput, render_png; "
        "png = render_png(StubInput('a lighthouse at dusk', 7, 96, 64, 0.0, None, None)); "
        "sys.stdout.write(hashlib.sha256(png).hexdigest())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=python_subprocess_env(PYTHONHASHSEED="12345"),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout == hashlib.sha256(png_of(INPUT)).hexdigest()


@pytest.mark.parametrize("change", [{"seed": 8}, {"prompt": "a lighthouse at dawn"}])
def test_another_seed_or_prompt_gives_another_image(change: dict[str, Any]) -> None:
    assert png_of(INPUT) != png_of({**INPUT, **change})


def test_the_image_is_a_png_of_the_requested_size() -> None:
    stored = run_plan(StubRunner(), INPUT).artifacts["image.png"]
    assert stored.content_type == "image/png"
    assert stored.step == "render"
    with Image.open(io.BytesIO(stored.data)) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (96, 64), "RGB")
        assert len(image.getcolors(96 * 64) or []) > 1  # shapes on a background, not a blank
        assert image.info == {}  # no metadata (no timestamp, no text chunks)


def test_integral_numbers_count_as_integers() -> None:
    """JSON Schema's "integer" admits 96.0, so a validated input can carry it."""
    assert png_of({**INPUT, "width": 96.0, "seed": 7.0}) == png_of(INPUT)


def test_the_manifest_describes_the_image() -> None:
    context = run_plan(StubRunner(), INPUT)
    png = context.artifacts["image.png"].data
    stored = context.artifacts["manifest.json"]
    assert (stored.step, stored.content_type) == ("describe", "application/json")
    assert json.loads(stored.data) == {
        "prompt": "a lighthouse at dusk",
        "seed": 7,
        "size": {"width": 96, "height": 64},
        "image": {
            "name": "image.png",
            "content_type": "image/png",
            "size_bytes": len(png),
            "sha256": hashlib.sha256(png).hexdigest(),
        },
    }


def test_a_step_runs_alone_in_a_fresh_context() -> None:
    """A redelivered job resumes at its first unfinished step, in another process."""
    context = RecordingContext(step="describe", position=2)
    StubRunner().run_step("describe", INPUT, context)
    manifest = json.loads(context.artifacts["manifest.json"].data)
    assert manifest["image"]["sha256"] == hashlib.sha256(png_of(INPUT)).hexdigest()


def test_each_step_logs_and_reports_increasing_progress_ending_at_one() -> None:
    context = run_plan(StubRunner(), INPUT)
    assert [step for step, _ in context.logs] == list(STEPS)
    assert context.logs[0][1].startswith("layout: 96x64, ")
    for step in STEPS:
        fractions = [report.fraction for report in context.progress_reports if report.step == step]
        assert len(fractions) >= 3
        assert fractions == sorted(set(fractions))
        assert fractions[0] > 0
        assert fractions[-1] == 1.0


@pytest.mark.parametrize("position", [0, 1, 2])
def test_fail_at_step_fails_that_step_after_the_ones_before(position: int) -> None:
    context = RecordingContext()
    with pytest.raises(StepFailed, match=f"^failed at step {position} as requested$"):
        run_plan(StubRunner(), {**INPUT, "fail_at_step": position}, context)
    assert context.step == STEPS[position]
    assert [step for step, _ in context.logs] == list(STEPS[:position])
    assert context.progress_reports[-1].fraction < 1.0


def test_crash_at_step_kills_the_process_running_that_step() -> None:
    # In a forked child: the knob SIGKILLs whichever process runs the step.
    fork = multiprocessing.get_context("fork")
    child = fork.Process(target=run_plan, args=(StubRunner(), {**INPUT, "crash_at_step": 1}))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL


def test_fail_at_a_step_past_the_plan_fails_nothing() -> None:
    assert run_plan(StubRunner(), {**INPUT, "fail_at_step": 3}).artifacts.keys() == {
        "image.png",
        "manifest.json",
    }


def test_step_duration_is_spent_in_short_sleeps() -> None:
    context = run_plan(StubRunner(), {**INPUT, "step_duration_s": 0.3})
    assert sum(context.sleeps) == pytest.approx(0.9)
    assert max(context.sleeps) <= SLEEP_SLICE_S


def test_cancel_during_a_long_step_ends_it_promptly_without_output() -> None:
    context = RecordingContext(step="render", position=1)
    canceler = threading.Timer(0.2, context.request_cancel)
    started = time.monotonic()
    canceler.start()
    with pytest.raises(StepCanceled):
        StubRunner().run_step("render", {**INPUT, "step_duration_s": 60}, context)
    elapsed = time.monotonic() - started
    assert elapsed < 10  # of the step's 60 s (generous: a shared machine may stall)
    assert context.artifacts == {}
    assert max(context.sleeps) <= SLEEP_SLICE_S


def test_a_step_of_a_canceled_job_does_not_start() -> None:
    context = RecordingContext(step="prepare")
    context.request_cancel()
    with pytest.raises(StepCanceled):
        StubRunner().run_step("prepare", INPUT, context)
    assert (context.progress_reports, context.logs, context.sleeps) == ([], [], [])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt": ""}, "input: prompt must be a non-empty string"),
        ({"width": 0}, "input: width must be an integer from 1 to 4096"),
        ({"height": 64.5}, "input: height must be an integer from 1 to 4096"),
        ({"seed": True}, "input: seed must be an integer from 0 to 2147483647"),
        ({"step_duration_s": -1}, "input: step_duration_s must be from 0 to 3600"),
    ],
)
def test_input_the_stub_cannot_draw_fails_the_step(change: dict[str, Any], message: str) -> None:
    with pytest.raises(StepFailed) as failure:
        StubRunner().run_step("prepare", {**INPUT, **change}, RecordingContext(step="prepare"))
    assert str(failure.value) == message


def test_an_unknown_step_is_an_internal_error() -> None:
    with pytest.raises(ValueError, match="the stub runner has no step 'upscale'"):
        StubRunner().run_step("upscale", INPUT, RecordingContext(step="upscale"))
