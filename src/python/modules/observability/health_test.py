"""DependencyCheck's contract, with probes that behave like drivers do: slow, failing, and
slow to clean up after cancellation (psycopg against a frozen server). Checks against real
dependencies are in the services' tests."""

import asyncio
import time

import pytest

from modules.observability.health import DependencyCheck, readiness

pytestmark = pytest.mark.anyio

TIMEOUT_S = 0.3
BOUND_S = TIMEOUT_S + 0.1


class CountingProbe:
    def __init__(self, seconds: float = 0.0, error: Exception | None = None) -> None:
        self.calls = 0
        self.seconds = seconds
        self.error = error

    async def __call__(self) -> str | None:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        if self.error is not None:
            raise self.error
        return f"call {self.calls}"


async def test_concurrent_callers_share_one_probe() -> None:
    probe = CountingProbe(seconds=0.05)
    check = DependencyCheck(probe, TIMEOUT_S, reuse_s=0)
    results = await asyncio.gather(*(check.result() for _ in range(50)))
    assert probe.calls == 1
    assert {result.detail for result in results} == {"call 1"}


async def test_a_result_is_reused_then_refreshed() -> None:
    probe = CountingProbe()
    check = DependencyCheck(probe, TIMEOUT_S, reuse_s=0.2)
    first = await check.result()
    assert (await check.result()).detail == first.detail == "call 1"
    await asyncio.sleep(0.25)  # past the reuse time: the next caller waits for a new probe
    assert (await check.result()).detail == "call 2"


async def test_a_busy_check_refreshes_ahead_without_making_callers_wait() -> None:
    probe = CountingProbe(seconds=0.05)
    check = DependencyCheck(probe, TIMEOUT_S, reuse_s=0.2)
    await check.result()
    await asyncio.sleep(0.12)  # past half the reuse time
    assert (await check.result()).detail == "call 1"  # answered at once from the last result
    await asyncio.sleep(0.07)  # the background refresh has finished
    assert (await check.result()).detail == "call 2"
    assert probe.calls == 2


async def test_a_slow_refresh_does_not_make_callers_wait() -> None:
    """Past the reuse time, the last result stands while a refresh started in time is running
    (until its deadline), however slow the dependency answers."""
    probe = CountingProbe()
    check = DependencyCheck(probe, TIMEOUT_S, reuse_s=0.1)
    await check.result()
    probe.seconds = 0.2  # slower than the reuse time
    await asyncio.sleep(0.06)
    assert (await check.result()).detail == "call 1"  # starts the refresh
    await asyncio.sleep(0.08)  # past the reuse time, the refresh still running
    started = time.monotonic()
    assert (await check.result()).detail == "call 1"
    assert time.monotonic() - started < 0.05
    await asyncio.sleep(0.2)  # the refresh has ended
    assert (await check.result()).detail == "call 2"


async def test_a_failure_names_the_error() -> None:
    check = DependencyCheck(CountingProbe(error=ConnectionError("refused\nmore")), TIMEOUT_S, 0)
    result = await check.result()
    assert (result.status, result.detail) == ("fail", "ConnectionError: refused")


async def test_a_hung_probe_fails_by_the_deadline() -> None:
    check = DependencyCheck(CountingProbe(seconds=60), TIMEOUT_S, reuse_s=0)
    started = time.monotonic()
    result = await check.result()
    assert time.monotonic() - started < BOUND_S
    assert (result.status, result.detail) == ("fail", f"no answer within {TIMEOUT_S:g}s")


async def test_callers_do_not_wait_for_a_probe_that_is_slow_to_clean_up() -> None:
    """psycopg, cancelled against a frozen server, spends 10 s inside the cancelled task before
    it gives up; callers must not, and no second probe may pile up meanwhile."""
    calls = 0
    cleaning_up = asyncio.Event()

    async def stubborn() -> str | None:
        nonlocal calls
        calls += 1
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cleaning_up.set()
            await asyncio.sleep(1.0)  # as psycopg's cancel request and wait do
            raise
        return None

    check = DependencyCheck(stubborn, TIMEOUT_S, reuse_s=0)
    answers = []
    for _ in range(3):
        started = time.monotonic()
        result = await check.result()
        answers.append((time.monotonic() - started, result.status))
    assert cleaning_up.is_set()
    assert all(elapsed < BOUND_S and status == "fail" for elapsed, status in answers), answers
    assert calls == 1  # the later callers found the first probe still in flight


async def test_readiness_reports_every_check_and_fails_if_one_fails() -> None:
    checks = {
        "up": DependencyCheck(CountingProbe(), TIMEOUT_S, 0),
        "down": DependencyCheck(CountingProbe(error=OSError("gone")), TIMEOUT_S, 0),
        "off": DependencyCheck(None, TIMEOUT_S, 0),
    }
    result = await readiness(checks)
    assert result.status == "not_ready"
    assert {name: check.status for name, check in result.checks.items()} == {
        "up": "ok",
        "down": "fail",
        "off": "disabled",
    }
