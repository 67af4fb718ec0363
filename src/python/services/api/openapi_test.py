"""The OpenAPI contract: valid 3.1, reproducible, committed, and true to the responses."""

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from modules.buildinfo import VERSION
from services.api.app import app
from services.api.openapi_export import DEFAULT_OUT, REGENERATE_HINT, main, render

COMMITTED = Path(DEFAULT_OUT)


def test_committed_spec_matches_the_code() -> None:
    """The drift gate: a route changed without regenerating the spec fails here."""
    generated = render(app.openapi())
    assert (
        COMMITTED.read_text(encoding="utf-8") == generated
    ), f"{COMMITTED} differs from the spec the code generates: {REGENERATE_HINT}"


def test_spec_is_valid_openapi_3_1() -> None:
    spec = app.openapi()
    assert spec["openapi"].startswith("3.1.")
    validate(spec)  # raises on any violation


def test_rendering_is_byte_stable() -> None:
    first = render(app.openapi())
    assert first == render(json.loads(first))
    assert first.endswith("}\n")
    assert not first.endswith("\n\n")


def test_spec_describes_the_operations() -> None:
    spec = app.openapi()
    assert spec["info"]["version"] == VERSION
    operations = {
        (path, method): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }
    assert {key: op["operationId"] for key, op in operations.items()} == {
        ("/healthz", "get"): "get_health",
        ("/readyz", "get"): "get_readiness",
        ("/metrics", "get"): "get_metrics",
        ("/v1/models", "get"): "list_models",
        ("/v1/models/{name}", "get"): "get_model",
        ("/v1/jobs", "get"): "list_jobs",
        ("/v1/jobs", "post"): "create_job",
        ("/v1/jobs/{job_id}", "get"): "get_job",
        ("/v1/jobs/{job_id}/cancel", "post"): "cancel_job",
        ("/v1/jobs/{job_id}/events", "get"): "list_job_events",
        ("/v1/jobs/{job_id}/artifacts", "get"): "list_job_artifacts",
    }
    for (path, _), operation in operations.items():
        assert operation["tags"] == [
            path.split("/")[2] if path.startswith("/v1/") else "operations"
        ]
        assert operation["responses"]["500"]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    readyz = operations[("/readyz", "get")]["responses"]
    for status in ("200", "503"):
        assert readyz[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Readiness"
        }


def test_validation_errors_are_documented_as_problems() -> None:
    """A route with parameters gets a 422 described as the Problem we really send."""
    from services.api.app_test import app_with_test_routes, make_settings

    spec = app_with_test_routes(make_settings()).openapi()
    responses = spec["paths"]["/v1/test-items/{item_id}"]["get"]["responses"]
    assert responses["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_check_passes_when_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--out", str(COMMITTED)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_check_fails_with_a_diff_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "openapi.v1.json"
    stale.write_text(COMMITTED.read_text().replace('"get_health"', '"old_name"'))
    assert main(["--check", "--out", str(stale)]) == 1
    output = capsys.readouterr()
    assert '-        "operationId": "old_name",' in output.out
    assert '+        "operationId": "get_health",' in output.out
    assert output.err.strip().endswith(REGENERATE_HINT)


def test_writing_twice_gives_identical_bytes(tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    assert main(["--out", str(out)]) == 0
    first = out.read_bytes()
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes() == first == COMMITTED.read_bytes()
    assert [path.name for path in tmp_path.iterdir()] == ["spec.json"]  # no temp files left


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("missing-dir/spec.json", "is not a directory"),
        ("a-file/spec.json", "is not a directory"),
        ("a-dir", "Is a directory"),
    ],
)
def test_unwritable_out_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, reason: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "a-dir").mkdir()
    assert main(["--out", str(tmp_path / target)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("forge-openapi: cannot write ")
    assert reason in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-dir", "a-file"]
