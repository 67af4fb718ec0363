"""Reading and checking models.json, the catalog of the models Forge offers."""

import json
from dataclasses import dataclass, fields
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from modules.persistence.base import JsonObject
from modules.runners.registry import RUNNERS

CATALOG_FILE = "models.json"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


class InvalidCatalog(Exception):
    """models.json is not a valid catalog; str() is one line naming the entry and the problem."""


@dataclass(frozen=True, kw_only=True)
class CatalogModel:
    """One entry of the catalog: what a row of `models` holds, but its id and timestamps."""

    name: str
    version: str
    task: str
    runner: str
    description: str
    input_schema: JsonObject  # JSON Schema (Draft 2020-12) of a job's input
    default_parameters: JsonObject  # overlaid by a job's input; may leave out required keys

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


_TEXT_FIELDS = ("name", "version", "task", "runner", "description")
_OBJECT_FIELDS = ("input_schema", "default_parameters")


def load_catalog() -> tuple[CatalogModel, ...]:
    """The catalog shipped with this package, checked."""
    return parse_catalog(files(__package__).joinpath(CATALOG_FILE).read_text(encoding="utf-8"))


def parse_catalog(text: str) -> tuple[CatalogModel, ...]:
    """A catalog from its JSON text, every entry checked (see `check`)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidCatalog(f"{CATALOG_FILE} is not JSON: {error}") from None
    if not isinstance(document, list):
        raise InvalidCatalog(f"{CATALOG_FILE} must hold a JSON array of models")
    models = tuple(_entry(index, entry) for index, entry in enumerate(document))
    seen: set[str] = set()
    for model in models:
        if model.ref in seen:
            raise InvalidCatalog(f"{model.ref} is in {CATALOG_FILE} more than once")
        seen.add(model.ref)
        check(model)
    return models


def check(model: CatalogModel) -> None:
    """Raise InvalidCatalog unless the input schema is a valid Draft 2020-12 schema, the
    default parameters fit it (required keys may be left to the job's input), and a runner
    of that name exists."""
    if model.input_schema.get("$schema", DRAFT_2020_12) != DRAFT_2020_12:
        raise InvalidCatalog(f"{model.ref}: input_schema must use JSON Schema {DRAFT_2020_12}")
    try:
        Draft202012Validator.check_schema(model.input_schema)
    except SchemaError as error:
        raise InvalidCatalog(
            f"{model.ref}: input_schema is not a valid JSON Schema: {error.message}"
        ) from None
    validator = Draft202012Validator(model.input_schema)
    for problem in validator.iter_errors(model.default_parameters):
        if not (problem.validator == "required" and not problem.path):
            raise InvalidCatalog(
                f"{model.ref}: default_parameters do not fit input_schema: "
                f"{problem.json_path}: {problem.message}"
            )
    if model.runner not in RUNNERS:
        known = ", ".join(sorted(RUNNERS))
        raise InvalidCatalog(f"{model.ref}: unknown runner {model.runner!r} (known: {known})")


def _entry(index: int, entry: Any) -> CatalogModel:
    where = f"{CATALOG_FILE} entry {index}"
    if not isinstance(entry, dict):
        raise InvalidCatalog(f"{where} must be a JSON object")
    expected = {field.name for field in fields(CatalogModel)}
    if missing := sorted(expected - entry.keys()):
        raise InvalidCatalog(f"{where} lacks {', '.join(missing)}")
    if unknown := sorted(entry.keys() - expected):
        raise InvalidCatalog(f"{where} has unknown keys: {', '.join(unknown)}")
    for key in _TEXT_FIELDS:
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise InvalidCatalog(f"{where}: {key} must be a non-empty string")
    for key in _OBJECT_FIELDS:
        if not isinstance(entry[key], dict):
            raise InvalidCatalog(f"{where}: {key} must be a JSON object")
    return CatalogModel(**entry)
