"""Readiness: may this process take traffic? Each dependency check runs concurrently under
its own timeout, so /readyz answers within the largest timeout even if a dependency hangs."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from modules.settings import Settings
from modules.storage.s3 import bucket_exists
from services.api.schemas.health import CheckResult, Readiness

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# A check returns an optional note, or raises to fail.
Probe = Callable[[], Awaitable[str | None]]

_MAX_DETAIL = 200


class ReadinessChecker:
    def __init__(self, settings: Settings, engine: AsyncEngine, s3: "S3Client") -> None:
        self._settings = settings
        self._engine = engine
        self._s3 = s3

    async def check(self) -> Readiness:
        settings = self._settings
        database, storage = await asyncio.gather(
            (
                _run(self._database, settings.readiness_database_timeout_s)
                if settings.readiness_database
                else _disabled()
            ),
            (
                _run(self._storage, settings.readiness_storage_timeout_s)
                if settings.readiness_storage != "off"
                else _disabled()
            ),
        )
        checks = {"database": database, "storage": storage}
        ready = all(result.status != "fail" for result in checks.values())
        return Readiness(status="ready" if ready else "not_ready", checks=checks)

    async def _database(self) -> str | None:
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return None

    async def _storage(self) -> str | None:
        bucket = self._settings.s3_bucket
        # boto3 blocks: run it in a thread. If the timeout fires first, the thread finishes on
        # its own within the client's connect/read timeouts (set to the same bound).
        if await asyncio.to_thread(bucket_exists, self._s3, bucket):
            return None
        if self._settings.readiness_storage == "permissive":
            return f"bucket {bucket!r} does not exist yet (permissive mode)"
        raise LookupError(f"bucket {bucket!r} does not exist")


async def _run(probe: Probe, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            note = await probe()
    except TimeoutError:
        return _result("fail", started, f"no answer within {timeout_s:g}s")
    except Exception as error:  # any failure means "not ready"; the body says which
        return _result("fail", started, _describe(error))
    return _result("ok", started, note)


async def _disabled() -> CheckResult:
    return CheckResult(status="disabled", latency_ms=None)


def _result(status: Literal["ok", "fail"], started: float, detail: str | None) -> CheckResult:
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(status=status, latency_ms=latency_ms, detail=detail)


def _describe(error: Exception) -> str:
    """The error's type and first line, bounded: enough to act on, no driver dump."""
    lines = str(error).strip().splitlines()
    described = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return described[:_MAX_DETAIL]
