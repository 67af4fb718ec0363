"""The stub runner ("stub"): draws a PNG from the prompt and seed, without a model.

It exercises everything a real runner does (several steps, progress, logs, artifacts, failure,
cancellation) at the cost of a few milliseconds, and its output is byte-identical for the same
input, so a resumed or rerun job can be checked against the first run.

Knobs in the input: `step_duration_s` makes each step take that long (in short sleeps, so a
cancellation is noticed within SLEEP_SLICE_S), `fail_at_step` makes the step at that position
fail, `crash_at_step` makes the process running that step kill itself (SIGKILL): a "poison" job,
for proving that a job which keeps killing its worker ends failed without holding up others.
"""

import colorsys
import hashlib
import io
import json
import math
import os
import random
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageDraw

from modules.runners.base import StepContext, StepFailed

STEPS = ("prepare", "render", "describe")
IMAGE = "image.png"
MANIFEST = "manifest.json"
# Longest single wait: how late a cancellation may be noticed during step_duration_s.
SLEEP_SLICE_S = 0.1
# Progress reports per step (the last one, 1.0, after the step's work).
PROGRESS_REPORTS = 4
# The runner's own limits, whatever a model's schema allows: memory (4096 x 4096 RGB is 48 MiB)
# and time.
MAX_SIDE = 4096
MAX_STEP_DURATION_S = 3600
MAX_INTEGER = 2**31 - 1

type Color = tuple[int, int, int]


@dataclass(frozen=True)
class StubInput:
    prompt: str
    seed: int
    width: int
    height: int
    step_duration_s: float
    fail_at_step: int | None
    crash_at_step: int | None


@dataclass(frozen=True)
class Shape:
    kind: Literal["rectangle", "ellipse", "triangle"]
    box: tuple[float, float, float, float]  # left, top, right, bottom as fractions of the image
    color: Color


@dataclass(frozen=True)
class Layout:
    background: Color
    shapes: tuple[Shape, ...]

    def describe(self) -> str:
        kinds = ", ".join(shape.kind for shape in self.shapes)
        return f"{len(self.shapes)} shapes ({kinds}) on background {_hex(self.background)}"


class StubRunner:
    """Steps: `prepare` (checks the input, derives the layout), `render` (stores image.png),
    `describe` (stores manifest.json with the image's sha256, from a fresh render)."""

    def plan(self, input: Mapping[str, Any]) -> Sequence[str]:
        return STEPS

    def run_step(self, step: str, input: Mapping[str, Any], context: StepContext) -> None:
        work: Callable[[StubInput, StepContext], str]
        match step:
            case "prepare":
                work = _prepare
            case "render":
                work = _render
            case "describe":
                work = _describe
            case _:
                raise ValueError(f"the stub runner has no step {step!r}")
        context.raise_if_canceled()
        stub_input = parse_input(input)
        # Wait first and work last: a step canceled while it waits has stored nothing.
        for report in range(1, PROGRESS_REPORTS):
            _sleep_in_slices(context, stub_input.step_duration_s / PROGRESS_REPORTS)
            context.progress(report / PROGRESS_REPORTS)
        _sleep_in_slices(context, stub_input.step_duration_s / PROGRESS_REPORTS)
        if stub_input.fail_at_step == context.position:
            raise StepFailed(f"failed at step {context.position} as requested")
        if stub_input.crash_at_step == context.position:
            os.kill(os.getpid(), signal.SIGKILL)
        message = work(stub_input, context)
        context.log(message)
        context.progress(1.0, message)


def parse_input(input: Mapping[str, Any]) -> StubInput:
    """The stub's input, checked: a model's schema may be looser than what the stub can draw."""
    prompt = input.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise StepFailed("input: prompt must be a non-empty string")
    step_duration_s = input.get("step_duration_s", 0)
    if isinstance(step_duration_s, bool) or not isinstance(step_duration_s, int | float):
        raise StepFailed("input: step_duration_s must be a number")
    if not 0 <= step_duration_s <= MAX_STEP_DURATION_S:
        raise StepFailed(f"input: step_duration_s must be from 0 to {MAX_STEP_DURATION_S}")
    fail_at_step = input.get("fail_at_step")
    crash_at_step = input.get("crash_at_step")
    return StubInput(
        prompt=prompt,
        seed=_integer(input, "seed", 0, MAX_INTEGER),
        width=_integer(input, "width", 1, MAX_SIDE),
        height=_integer(input, "height", 1, MAX_SIDE),
        step_duration_s=float(step_duration_s),
        fail_at_step=(
            None if fail_at_step is None else _integer(input, "fail_at_step", 0, MAX_INTEGER)
        ),
        crash_at_step=(
            None if crash_at_step is None else _integer(input, "crash_at_step", 0, MAX_INTEGER)
        ),
    )


def _integer(input: Mapping[str, Any], key: str, low: int, high: int) -> int:
    # JSON Schema's "integer" admits 64.0: a JSON number with a zero fraction.
    value = input.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StepFailed(f"input: {key} must be an integer from {low} to {high}")
    return value


def derive_layout(prompt: str, seed: int) -> Layout:
    """The picture: the prompt picks the palette and how many shapes, the seed where they go."""
    digest = hashlib.sha256(prompt.encode()).digest()
    hue = int.from_bytes(digest[:2]) / 65536
    count = 3 + digest[2] % 6
    rng = random.Random(seed)
    shapes = []
    for _ in range(count):
        left, right = sorted((rng.random(), rng.random()))
        top, bottom = sorted((rng.random(), rng.random()))
        shape_hue = (hue + rng.uniform(-0.12, 0.12)) % 1.0
        shapes.append(
            Shape(
                kind=rng.choice(("rectangle", "ellipse", "triangle")),
                box=(left, top, right, bottom),
                color=_rgb(shape_hue, rng.uniform(0.45, 0.9), rng.uniform(0.6, 1.0)),
            )
        )
    return Layout(background=_rgb(hue, 0.35, 0.22), shapes=tuple(shapes))


def render_png(stub_input: StubInput) -> bytes:
    """The PNG for this input: the same bytes every time (no antialiasing, no timestamp or
    other metadata in the file)."""
    layout = derive_layout(stub_input.prompt, stub_input.seed)
    width, height = stub_input.width, stub_input.height
    image = Image.new("RGB", (width, height), layout.background)
    draw = ImageDraw.Draw(image)
    for shape in layout.shapes:
        left, top, right, bottom = shape.box
        box = (left * (width - 1), top * (height - 1), right * (width - 1), bottom * (height - 1))
        match shape.kind:
            case "rectangle":
                draw.rectangle(box, fill=shape.color)
            case "ellipse":
                draw.ellipse(box, fill=shape.color)
            case "triangle":
                x0, y0, x1, y1 = box
                draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=shape.color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def manifest(stub_input: StubInput, png: bytes) -> bytes:
    document = {
        "prompt": stub_input.prompt,
        "seed": stub_input.seed,
        "size": {"width": stub_input.width, "height": stub_input.height},
        "image": {
            "name": IMAGE,
            "content_type": "image/png",
            "size_bytes": len(png),
            "sha256": hashlib.sha256(png).hexdigest(),
        },
    }
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


def _prepare(stub_input: StubInput, context: StepContext) -> str:
    layout = derive_layout(stub_input.prompt, stub_input.seed)
    return f"layout: {stub_input.width}x{stub_input.height}, {layout.describe()}"


def _render(stub_input: StubInput, context: StepContext) -> str:
    png = render_png(stub_input)
    context.store_artifact(IMAGE, png, "image/png")
    return f"rendered {IMAGE}: {stub_input.width}x{stub_input.height}, {len(png)} bytes"


def _describe(stub_input: StubInput, context: StepContext) -> str:
    # Rendered again rather than read back: steps share nothing but the input.
    png = render_png(stub_input)
    context.store_artifact(MANIFEST, manifest(stub_input, png), "application/json")
    return f"wrote {MANIFEST}: {IMAGE} sha256 {hashlib.sha256(png).hexdigest()}"


def _sleep_in_slices(context: StepContext, seconds: float) -> None:
    if seconds <= 0:
        return
    slices = math.ceil(seconds / SLEEP_SLICE_S)
    for _ in range(slices):
        context.sleep(seconds / slices)


def _rgb(hue: float, saturation: float, value: float) -> Color:
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _hex(color: Color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)
