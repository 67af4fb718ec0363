"""The api's OpenAPI document, adjusted so that it describes what the api really sends."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from modules.contract.problem import MEDIA_TYPE, Problem

PROBLEM_REF = "#/components/schemas/Problem"
TAGS = [
    {"name": "models", "description": "The models jobs can run."},
    {"name": "jobs", "description": "Submit jobs, follow them, cancel them, fetch artifacts."},
    {"name": "operations", "description": "Liveness, readiness and metrics for operators."},
]
# Any operation can fail unexpectedly; the middleware then answers with a Problem.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    500: {"model": Problem, "description": "Unexpected error, logged with the request ID."},
}


class ForgeAPI(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            spec = get_openapi(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=self.routes,
                tags=TAGS,
            )
            self.openapi_schema = _problems_as_problem_json(spec)
        return self.openapi_schema


def _problems_as_problem_json(spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents every model under `application/json` and validation errors with its
    own `HTTPValidationError`; Forge answers errors as `application/problem+json` Problems."""
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                if status == "422" or schema.get("$ref") == PROBLEM_REF:
                    content.pop("application/json", None)
                    content[MEDIA_TYPE] = {"schema": {"$ref": PROBLEM_REF}}
    schemas = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec
