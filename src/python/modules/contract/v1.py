"""The bodies of the /v1 API (docs/openapi/openapi.v1.json is generated from these)."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Plain enums without SQLAlchemy: the database enforces the same sets.
from modules.persistence.statuses import JobStatus, StepStatus

# The shape of modules.persistence.base.JsonObject, restated so that the contract (and the
# client that imports it) does not depend on SQLAlchemy.
type JsonValue = str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]
type JsonObject = dict[str, JsonValue]

MAX_PRIORITY = 9
# A model's `name` or `name@version`: what the catalog's names and versions look like.
MODEL_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9][A-Za-z0-9._+-]*)?$"


class ModelOut(BaseModel):
    name: str
    version: str
    ref: str = Field(description="`name@version`, what a job names to pin this version.")
    task: str = Field(examples=["text-to-image"])
    runner: str
    description: str
    input_schema: JsonObject = Field(description="JSON Schema (Draft 2020-12) of a job's input.")
    default_parameters: JsonObject = Field(description="Input values used where a job omits them.")
    created_at: datetime


class ModelList(BaseModel):
    data: list[ModelOut]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        max_length=200,
        pattern=MODEL_REF_PATTERN,
        description="A model's `name` (its newest version) or `name@version`.",
        examples=["stub-image@1"],
    )
    input: JsonObject = Field(
        default_factory=dict,
        description="Validated against the model's input_schema.",
        examples=[{"prompt": "a red fox", "seed": 7}],
    )
    priority: int = Field(
        0, ge=0, le=MAX_PRIORITY, description="Higher runs first among queued jobs."
    )

    @field_validator("input")
    @classmethod
    def _storable(cls, value: JsonObject) -> JsonObject:
        """PostgreSQL's jsonb cannot hold the NUL character: refuse it here (422), not at the
        insert (500)."""
        if _holds_nul(value):
            raise ValueError("strings and keys must not contain the NUL character (\\u0000)")
        return value


class StepOut(BaseModel):
    name: str
    position: int
    status: StepStatus
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: JsonObject | None


class ArtifactOut(BaseModel):
    name: str
    step: int = Field(description="Position of the step that stored it.")
    content_type: str
    size_bytes: int
    sha256: str
    url: str = Field(description="Presigned GET URL; valid until `url_expires_at`.")
    url_expires_at: datetime


class ArtifactList(BaseModel):
    data: list[ArtifactOut]


class JobUrls(BaseModel):
    self: str
    cancel: str
    events: str
    artifacts: str


class JobOut(BaseModel):
    id: uuid.UUID
    model: str = Field(description="`name@version` of the model it runs.")
    status: JobStatus
    input: JsonObject = Field(description="The input it runs with, defaults applied.")
    priority: int
    error: JsonObject | None = Field(description="Why it failed: `type` and `message`.")
    attempts: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    steps: list[StepOut]
    output: list[ArtifactOut] = Field(description="Its artifacts so far.")
    urls: JobUrls


class JobList(BaseModel):
    data: list[JobOut]
    next: str | None = Field(description="URL of the next (older) page; null on the last page.")


class EventOut(BaseModel):
    seq: int = Field(description="1, 2, 3 ... per job, without gaps: resume with `after=seq`.")
    type: str = Field(examples=["step.progress"])
    payload: JsonObject
    created_at: datetime


class EventPage(BaseModel):
    data: list[EventOut]
    next: str = Field(description="URL of the events after this page (poll it for more).")


def _holds_nul(value: JsonValue) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
