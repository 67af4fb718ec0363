"""CPU time used by groups of local processes over a stretch of a benchmark, from /proc: where a
job's CPU goes, across every process that serves it. On a machine of N cores, a workload cannot
go faster than N seconds of CPU per second, so CPU per job bounds throughput from above."""

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

# A group's processes, looked up at each reading: PostgreSQL's backends come and go.
type Group = Callable[[], list[int]]


def process_cpu_s(pid: int) -> float:
    """A process's CPU time so far, user and system, all its threads; 0 once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rpartition(")")[2].split()  # the fields after the command's name, from 3rd
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


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
    """Yields a dict filled, when the block ends, with each group's CPU seconds during it. A
    process that ended during the block has its CPU uncounted (an undercount, never more)."""
    used: dict[str, float] = {}
    before = {name: _cpu_by_pid(group()) for name, group in groups.items()}
    yield used
    for name, group in groups.items():
        after = _cpu_by_pid(group())
        used[name] = sum(cpu - before[name].get(pid, 0.0) for pid, cpu in after.items())


def add(total: dict[str, float], used: Mapping[str, float]) -> None:
    """Adds one stretch's CPU seconds per group (as measured() fills them) to `total`."""
    for name, seconds in used.items():
        total[name] = total.get(name, 0.0) + seconds


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: process_cpu_s(pid) for pid in pids}
