"""Fixtures every test may use. Those for real services live in `modules.testing.*_fixtures`
and are imported by the conftest.py of the packages whose tests use them, so that a change to,
say, persistence reruns only the tests that touch a database (change-based CI follows the
imports)."""

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (`@pytest.mark.anyio`) run on asyncio, like the api."""
    return "asyncio"
