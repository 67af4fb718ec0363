"""CPU accounting from /proc, against child processes that burn CPU and end."""

import os
import subprocess
import sys

from benchmarks import cpu

# Burns its first argument's seconds of CPU; with a second, burns that many more after a line
# on stdin, having said "ready" in between.
_BURN = """
import sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
burn(float(sys.argv[1]))
if len(sys.argv) > 2:
    print("ready", flush=True)
    sys.stdin.readline()
    burn(float(sys.argv[2]))
"""


def _burner(*seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _BURN, *map(str, seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_child_that_ran_and_ended_within_the_stretch_counts_for_its_parent() -> None:
    with cpu.measured({"parent": cpu.fixed(os.getpid())}) as used:
        _burner(0.3).wait()
    # Its 0.3 s, its interpreter's start and this process's share of the stretch.
    assert 0.3 <= used["parent"] < 0.6


def test_a_member_that_ends_counts_what_it_used_during_the_stretch_only() -> None:
    child = _burner(0.3, 0.3)
    assert child.stdout is not None
    assert child.stdin is not None
    assert child.stdout.readline().strip() == "ready"  # 0.3 s burnt before the stretch
    with cpu.measured({"both": cpu.fixed(os.getpid(), child.pid)}) as used:
        child.stdin.write("go\n")
        child.stdin.flush()
        child.wait()
    assert 0.3 <= used["both"] < 0.45
