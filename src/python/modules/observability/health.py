"""Liveness and readiness, shared by the api and the worker.

`/healthz` (liveness, `Health`) says the process is up and touches no dependency. `/readyz`
(readiness) says whether the process can do its work now, one `DependencyCheck` per dependency.

However many requests ask at once, at most one probe of a dependency is in flight. Its result is
reused for a short time (a probe storm is not a dependency storm) and refreshed ahead of that in
the background, the old result standing until the refresh ends or reaches its deadline, so that
a busy endpoint answers at once even when a dependency is slow. Every caller is answered by the
probe's deadline, even when the probe itself outlives it. That last part matters: a driver may spend seconds cleaning up after a
cancelled call (psycopg cancels the query on the server and waits up to 10 s for a frozen one),
and that cleanup runs inside the cancelled task. Callers therefore never await the probe's task
itself, only wait for it up to the deadline; a late task finishes on its own, and until it has,
no second probe of that dependency starts.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, Field

# A probe returns an optional note for a passing check, or raises to fail.
Probe = Callable[[], Awaitable[str | None]]

_MAX_DETAIL = 200


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
        None, description="Why it failed, or a note on a passing check (e.g. the schema revision)."
    )


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"] = Field(
        description="`ready` when every enabled check passed."
    )
    checks: dict[str, CheckResult] = Field(description="Every check by name, enabled or not.")


DISABLED = CheckResult(status="disabled", latency_ms=None)


class DependencyCheck:
    """One dependency's probe: single-flight, results reused for `reuse_s`, callers answered
    within `timeout_s` of the probe's start. Use from one event loop."""

    def __init__(self, probe: Probe | None, timeout_s: float, reuse_s: float) -> None:
        self._probe = probe  # None: disabled by settings
        self._timeout_s = timeout_s
        self._reuse_s = reuse_s
        self._in_flight: asyncio.Task[CheckResult] | None = None
        self._started = 0.0
        self._last: CheckResult | None = None
        self._last_at = 0.0

    def reusable(self) -> CheckResult | None:
        """The last result if it may still be used (or the check is disabled), without waiting;
        None when a caller must wait for a probe (`result()`)."""
        if self._probe is None:
            return DISABLED
        if self._last is None:
            return None
        now = time.monotonic()
        age = now - self._last_at
        if age < self._reuse_s:
            # Refresh ahead, in the background, once half the reuse time is gone: a busy
            # endpoint keeps answering at once.
            if age >= self._reuse_s / 2:
                self._start()
            return self._last
        # A refresh started while the result was fresh and not yet past its deadline: keep
        # the result until it ends, so that a slow dependency does not make callers wait.
        refreshing = self._in_flight is not None and self._started < self._last_at + self._reuse_s
        if refreshing and now < self._started + self._timeout_s:
            return self._last
        return None

    async def result(self) -> CheckResult:
        reusable = self.reusable()
        if reusable is not None:
            return reusable
        now = time.monotonic()
        task = self._start()
        remaining = max(0.0, self._started + self._timeout_s - now)
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if done:
            return task.result()
        # The probe is past its deadline and still cleaning up: fail now, without waiting.
        return _failed(self._started, f"no answer within {self._timeout_s:g}s")

    def _start(self) -> "asyncio.Task[CheckResult]":
        if self._in_flight is None:
            self._started = time.monotonic()
            self._in_flight = asyncio.create_task(self._run(self._started))
        return self._in_flight

    async def _run(self, started: float) -> CheckResult:
        assert self._probe is not None
        try:
            async with asyncio.timeout(self._timeout_s):
                note = await self._probe()
        except TimeoutError:
            result = _failed(started, f"no answer within {self._timeout_s:g}s")
        except Exception as error:  # any failure means "not ready"; the detail says which
            result = _failed(started, describe(error))
        else:
            result = CheckResult(status="ok", latency_ms=_elapsed_ms(started), detail=note)
        finally:
            self._in_flight = None
        self._last, self._last_at = result, time.monotonic()
        return result


async def readiness(checks: dict[str, DependencyCheck]) -> Readiness:
    """Every check's result, waiting for probes concurrently: the answer takes as long as the
    slowest deadline. Reusable results need no task (the common case under load)."""
    reusable = {name: check.reusable() for name, check in checks.items()}
    waiting = [name for name, result in reusable.items() if result is None]
    fresh: dict[str, CheckResult] = {}
    if waiting:
        results = await asyncio.gather(*(checks[name].result() for name in waiting))
        fresh = dict(zip(waiting, results, strict=True))
    named = {name: reusable[name] or fresh[name] for name in checks}
    ready = all(result.status != "fail" for result in named.values())
    return Readiness(status="ready" if ready else "not_ready", checks=named)


def describe(error: BaseException) -> str:
    """The error's type and first line, bounded: enough to act on, no driver dump."""
    lines = str(error).strip().splitlines()
    described = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return described[:_MAX_DETAIL]


def _failed(started: float, detail: str) -> CheckResult:
    return CheckResult(status="fail", latency_ms=_elapsed_ms(started), detail=detail)


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
