"""models.json and the checks every catalog entry passes."""

import json
from dataclasses import asdict
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError

from modules.catalog.loading import InvalidCatalog, load_catalog, parse_catalog
from modules.runners.registry import get_runner
from modules.testing.step_context import run_plan

MODELS = {model.ref: model for model in load_catalog()}
STUBS = sorted(ref for ref, model in MODELS.items() if model.runner == "stub")


def test_the_catalog_offers_the_stub_models() -> None:
    assert {ref: (model.task, model.runner) for ref, model in MODELS.items()} == {
        "stub-image@1": ("text-to-image", "stub"),
        "stub-image@2": ("text-to-image", "stub"),  # @1 and crash_at_step
        "stub-icon@1": ("text-to-icon", "stub"),
        "echo@1": ("echo", "echo"),
    }
    assert all(model.description for model in MODELS.values())


@pytest.mark.parametrize(
    ("ref", "input", "artifacts"),
    [
        *[(ref, {"prompt": "a red kite"}, {"image.png", "manifest.json"}) for ref in STUBS],
        ("echo@1", {"message": "hello"}, {"output.json"}),
    ],
)
def test_defaults_and_the_required_input_run_on_the_models_runner(
    ref: str, input: dict[str, Any], artifacts: set[str]
) -> None:
    model = MODELS[ref]
    effective = {**model.default_parameters, **input}
    Draft202012Validator(model.input_schema).validate(effective)
    context = run_plan(get_runner(model.runner), effective)
    assert context.artifacts.keys() == artifacts


@pytest.mark.parametrize(
    ("ref", "input"),
    [
        ("stub-image@1", {}),
        ("stub-image@1", {"prompt": ""}),
        ("stub-image@1", {"prompt": "x" * 1001}),
        ("stub-image@1", {"prompt": "x", "seed": -1}),
        ("stub-image@1", {"prompt": "x", "seed": 2**31}),
        ("stub-image@1", {"prompt": "x", "width": 15}),
        ("stub-image@1", {"prompt": "x", "height": 1025}),
        ("stub-image@1", {"prompt": "x", "step_duration_s": 61}),
        ("stub-image@1", {"prompt": "x", "fail_at_step": 11}),
        ("stub-image@1", {"prompt": "x", "steps": 30}),
        ("stub-icon@1", {"prompt": "x", "width": 257}),
        ("stub-image@1", {"prompt": "x", "crash_at_step": 0}),
        ("stub-image@2", {"prompt": "x", "crash_at_step": 11}),
        ("echo@1", {}),
        ("echo@1", {"message": "x" * 10001}),
        ("echo@1", {"message": "x", "prompt": "x"}),
    ],
)
def test_the_schemas_refuse_out_of_bounds_input(ref: str, input: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Draft202012Validator(MODELS[ref].input_schema).validate(input)


@pytest.mark.parametrize(
    ("ref", "input"),
    [
        ("stub-image@1", {"prompt": "x" * 1000, "seed": 2**31 - 1, "width": 1024, "height": 16}),
        ("stub-image@1", {"prompt": "x", "step_duration_s": 0.5, "fail_at_step": 0}),
        ("stub-icon@1", {"prompt": "x", "width": 256, "height": 16}),
        ("stub-image@2", {"prompt": "x", "crash_at_step": 2}),
    ],
)
def test_the_schemas_accept_input_within_bounds(ref: str, input: dict[str, Any]) -> None:
    Draft202012Validator(MODELS[ref].input_schema).validate(input)


def catalog_with(**changes: Any) -> str:
    """models.json's first entry with `changes`, as catalog text."""
    return json.dumps([asdict(next(iter(MODELS.values()))) | changes])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "models.json is not JSON: Expecting property name enclosed in double quotes"),
        ("{}", "models.json must hold a JSON array of models"),
        ("[1]", "models.json entry 0 must be a JSON object"),
        ('[{"name": "m"}]', "models.json entry 0 lacks default_parameters, description, "),
        (catalog_with(owner="x"), "models.json entry 0 has unknown keys: owner"),
        (catalog_with(version=""), "models.json entry 0: version must be a non-empty string"),
        (catalog_with(input_schema=[]), "models.json entry 0: input_schema must be a JSON object"),
        (
            catalog_with(input_schema={"type": "struct"}),
            "stub-image@1: input_schema is not a valid JSON Schema: 'struct' is not valid under",
        ),
        (
            catalog_with(input_schema={"$schema": "http://json-schema.org/draft-07/schema#"}),
            "stub-image@1: input_schema must use JSON Schema "
            "https://json-schema.org/draft/2020-12/schema",
        ),
        (
            catalog_with(default_parameters={"width": 2048}),
            "stub-image@1: default_parameters do not fit input_schema: $.width: "
            "2048 is greater than the maximum of 1024",
        ),
        (
            catalog_with(default_parameters={"colour": "red"}),
            "stub-image@1: default_parameters do not fit input_schema: $: Additional properties",
        ),
        (
            catalog_with(runner="diffusion"),
            "stub-image@1: unknown runner 'diffusion' (known: echo, stub)",
        ),
        (
            json.dumps([asdict(MODELS["stub-image@1"])] * 2),
            "stub-image@1 is in models.json more than once",
        ),
    ],
)
def test_an_invalid_catalog_is_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(InvalidCatalog) as error:
        parse_catalog(text)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_defaults_may_leave_required_keys_to_the_job() -> None:
    assert "prompt" not in MODELS["stub-image@1"].default_parameters
    assert parse_catalog(catalog_with()) == (MODELS["stub-image@1"],)
