"""CPU time used by groups of local processes over a stretch of a benchmark, from /proc: where a
job's CPU goes, across every process that serves it. On a machine of N cores, a workload cannot
go faster than N seconds of CPU per second, so CPU per job bounds throughput from above."""

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

# A group's processes, looked up at each reading: PostgreSQL's backends come and go.
type Group = Callable[[], list[int]]


@dataclass(frozen=True)
class _Reading:
    cpu_s: float  # user and system, all threads, and the children it waited for
    parent: int


def _read(pid: int) -> _Reading | None:
    """A process's CPU time so far: its own and that of its children that ended and that it
    waited for (PostgreSQL's backends, once their connections close); None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rpartition(")")[2].split()  # the fields after the command's name, from 3rd
    ticks = sum(int(field) for field in fields[11:15])  # utime, stime, cutime, cstime
    return _Reading(ticks / os.sysconf("SC_CLK_TCK"), parent=int(fields[1]))


def named(command: str) -> Group:
    """Every process whose command name is `command` (e.g. every PostgreSQL backend)."""

    def pids() -> list[int]:
        found = []
        for comm in Path("/proc").glob("[0-9]*/comm"):
            with suppress(FileNotFoundError, ProcessLookupError):
                if comm.read_text().strip() == command:
                    found.append(int(comm.parent.name))
        return found

    return pids


def fixed(*pids: int) -> Group:
    return lambda: list(pids)


@contextmanager
def measured(groups: Mapping[str, Group]) -> Iterator[dict[str, float]]:
    """Yields a dict filled, when the block ends, with each group's CPU seconds during it.

    A process that ends during the block counts for the group of the parent that waited for
    it (its CPU moves into the parent's): what it used during the block, or all of it if it
    also started during the block. Without such a parent in a group it is left out, an
    undercount, never more."""
    used: dict[str, float] = {}
    before = {name: _readings(group()) for name, group in groups.items()}
    yield used
    after = {name: _readings(group()) for name, group in groups.items()}
    # What each process that ended had used before the block: its parent counts it again.
    ended = [
        reading
        for name, readings in before.items()
        for pid, reading in readings.items()
        if pid not in after[name]
    ]
    for name, readings in after.items():
        used[name] = sum(
            reading.cpu_s - (before[name][pid].cpu_s if pid in before[name] else 0.0)
            for pid, reading in readings.items()
        ) - sum(reading.cpu_s for reading in ended if reading.parent in readings)


def add(total: dict[str, float], used: Mapping[str, float]) -> None:
    """Adds one stretch's CPU seconds per group (as measured() fills them) to `total`."""
    for name, seconds in used.items():
        total[name] = total.get(name, 0.0) + seconds


def _readings(pids: list[int]) -> dict[int, _Reading]:
    readings = {pid: _read(pid) for pid in pids}
    return {pid: reading for pid, reading in readings.items() if reading is not None}
