"""Runners by name: a model's `runner` column names one of RUNNERS."""

from collections.abc import Mapping
from types import MappingProxyType

from modules.runners.base import Runner
from modules.runners.echo import EchoRunner
from modules.runners.stub import StubRunner

# Runners hold no state between steps (see base.py), so one instance serves every job.
RUNNERS: Mapping[str, Runner] = MappingProxyType({"stub": StubRunner(), "echo": EchoRunner()})


class UnknownRunner(KeyError):
    """No runner has this name."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; this message is meant to be read.
        return str(self.args[0])


def get_runner(name: str) -> Runner:
    try:
        return RUNNERS[name]
    except KeyError:
        known = ", ".join(sorted(RUNNERS))
        raise UnknownRunner(f"unknown runner {name!r} (known: {known})") from None
