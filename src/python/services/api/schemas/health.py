"""Bodies of the operational endpoints: liveness and readiness."""

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always `ok`: the process is serving.")
    version: str = Field(description="Forge release of this process.", examples=["0.1.0"])


class CheckResult(BaseModel):
    status: Literal["ok", "fail", "disabled"] = Field(
        description="`disabled` when settings switch the check off."
    )
    latency_ms: float | None = Field(
        description="How long the check took; null when it did not run.", examples=[1.8]
    )
    detail: str | None = Field(
        None, description="Why it failed, or a note on a passing check (permissive mode)."
    )


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"] = Field(
        description="`ready` when every enabled check passed."
    )
    checks: dict[str, CheckResult] = Field(
        description="Every check by name (`database`, `storage`), enabled or not."
    )
