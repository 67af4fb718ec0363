"""Keeping parallel test processes apart."""

import os


def execution_slot() -> int:
    """Pants runs test files in parallel, one per execution slot: resources keyed by the slot
    (a database, Redis database numbers) are private to one test process."""
    return int(os.environ.get("FORGE_TEST_SLOT", "0"))
