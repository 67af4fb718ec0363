"""The fault-injection soak: no job lost, none stuck, none run twice.

Starts a stack with a short lease and reconcile interval: local processes (--stack process,
process_stack.py: a private Redis, an S3 server, the api, supervised workers and the reconciler
on a private database of --database-url) or the Compose stack (--stack compose,
compose_stack.py). Clients submit --jobs jobs of the stub models with short random step
durations, --poison of them on stub-image@2 with crash_at_step (their process SIGKILLs itself),
retrying each with the same Idempotency-Key while the api is down. Meanwhile it injects, at
random intervals: SIGKILL of a pool process and of a whole worker, Redis restarted empty, the
api killed, PostgreSQL stalled, and a SIGTERM (graceful) worker stop. Then it waits for every
job to end (a job is stuck if it has not while none ended for --stuck-after-s), prints the
report and exits 1 on any lost, stuck, duplicated or wrong outcome.
"""

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from chaos.compose_stack import compose_stack
from chaos.process_stack import process_stack
from chaos.stack import SHUTDOWN_GRACE_S, Stack
from modules.jobs.execution import SHUT_DOWN

PROGRAM = "soak"
TERMINAL = {"succeeded", "failed", "canceled"}
POISON_MODEL = "stub-image@2"
# The goal: a job whose worker died or stopped runs again within this many seconds (lease expiry
# plus the reconciler's period, with room).
RUNNING_AGAIN_GOAL_S = 30
STACKS: dict[str, Callable[[argparse.Namespace, Path], AbstractContextManager[Stack]]] = {
    "process": process_stack,
    "compose": compose_stack,
}


def say(line: str = "") -> None:
    """A line of the report, on stdout."""
    sys.stdout.write(line + "\n")


def log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {PROGRAM}: {message}\n")
    sys.stderr.flush()


@dataclass
class Submitted:
    key: str
    model: str
    poison: bool
    job_id: str | None = None
    tries: int = 0


@dataclass
class Fault:
    name: str
    at: float  # monotonic
    wall: float  # epoch seconds, to compare with PostgreSQL's timestamps
    jobs: list[str] = field(default_factory=list)  # running on what was killed


class Soak:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.faults: list[Fault] = []
        self.submitted: list[Submitted] = []
        self.stop_times: list[float] = []  # SIGTERM to exit of the worker
        self.injection_failed: list[str] = []  # the fault that could not be done
        self.stack: Stack  # once it runs

    # --- Clients -------------------------------------------------------------------------

    def plan_jobs(self) -> None:
        poison = set(self.rng.sample(range(self.options.jobs), self.options.poison))
        for index in range(self.options.jobs):
            model = (
                POISON_MODEL
                if index in poison
                else self.rng.choice(["stub-image@1", "stub-icon@1"])
            )
            self.submitted.append(Submitted(str(uuid.uuid4()), model, index in poison))

    def body(self, job: Submitted, index: int) -> dict[str, object]:
        rng = random.Random(index)  # the same body on every retry (the key's request hash)
        input: dict[str, object] = {
            "prompt": f"soak job {index}",
            "seed": rng.randrange(2**31),
            "width": 32,
            "height": 32,
            "step_duration_s": round(rng.uniform(0, self.options.max_step_s), 3),
        }
        if index % 10 == 5:  # longer than the shutdown grace: a graceful stop gives it back
            input["step_duration_s"] = SHUTDOWN_GRACE_S
        if job.poison:
            input["crash_at_step"] = rng.randrange(3)
        return {"model": job.model, "input": input}

    def submit_all(self, started: float, rate: float) -> None:
        """Submits job i at started + i / rate, from a few client threads."""
        pending = list(enumerate(self.submitted))
        lock = threading.Lock()

        def client() -> None:
            auth = {"Authorization": f"Bearer {self.stack.api_key}"}
            with httpx.Client(base_url=self.stack.api_url, headers=auth, timeout=10) as http:
                while True:
                    with lock:
                        if not pending:
                            return
                        index, job = pending.pop(0)
                    due = started + index / rate
                    time.sleep(max(0.0, due - time.monotonic()))
                    body = self.body(job, index)
                    while job.job_id is None:
                        job.tries += 1
                        try:
                            reply = http.post(
                                "/v1/jobs", json=body, headers={"Idempotency-Key": job.key}
                            )
                        except httpx.HTTPError:
                            time.sleep(0.3)
                            continue
                        if reply.status_code in (200, 201, 202):
                            job.job_id = reply.json()["id"]
                        elif reply.status_code >= 500:
                            time.sleep(0.3)
                        else:
                            raise SystemExit(f"{PROGRAM}: {reply.status_code} {reply.text}")

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # --- Faults --------------------------------------------------------------------------

    def running_on(self, owners: list[str], min_step_s: float = 0) -> list[str]:
        with psycopg.connect(self.stack.dsn) as conn:
            rows = conn.execute(
                "SELECT id::text FROM jobs WHERE status = 'running' AND lease_owner = ANY(%s) "
                "AND (input->>'step_duration_s')::float >= %s",
                (owners, min_step_s),
            ).fetchall()
        return [row[0] for row in rows]

    def fault(self, kind: str, jobs: list[str] | None = None) -> None:
        name = self.stack.names[kind].format(seconds=self.options.stall_s)
        self.faults.append(Fault(name, time.monotonic(), time.time(), jobs or []))
        log(f"fault: {name}" + (f" ({len(jobs)} jobs running on it)" if jobs else ""))

    def busy_worker(self, within_s: float = 30, min_step_s: float = 0) -> tuple[str, list[str]]:
        """A worker and its pool processes running a job, once there are any: a fault aimed at
        a worker that is still starting (which takes seconds) proves nothing about jobs. Every
        other worker must be up as well, as in a deployment of several: with none left, the
        time a job takes to run again would be the time a worker takes to start."""
        deadline = time.monotonic() + within_s
        while True:
            worker = self.rng.choice(self.stack.workers)
            others = [other for other in self.stack.workers if other != worker]
            up = all(self.stack.pool_owners(other) for other in others)
            owners = self.stack.pool_owners(worker) if up else []
            busy = [owner for owner in owners if self.running_on([owner], min_step_s)]
            if busy or time.monotonic() > deadline:
                return worker, busy
            time.sleep(0.1)

    # Each fault is recorded as it starts: a stack may take seconds to act (a container's stop
    # and start), and the time its jobs take to run again counts from the fault.

    def kill_pool_process(self) -> None:
        _, busy = self.busy_worker()
        # Spread the damage: a job killed on each of its attempts rightly fails, but says little.
        killed = {job for fault in self.faults if "SIGKILL" in fault.name for job in fault.jobs}
        fresh = [owner for owner in busy if not killed.intersection(self.running_on([owner]))]
        if busy:
            owner = self.rng.choice(fresh or busy)
            self.fault("pool", self.running_on([owner]))
            self.stack.kill_pool_process(owner)

    def kill_worker(self) -> None:
        worker, _ = self.busy_worker()
        self.fault("worker", self.running_on(self.stack.pool_owners(worker)))
        self.stack.kill_worker(worker)

    def stop_worker(self) -> None:
        worker, _ = self.busy_worker(min_step_s=SHUTDOWN_GRACE_S)
        self.fault("stop", self.running_on(self.stack.pool_owners(worker)))
        self.stop_times.append(self.stack.stop_worker(worker))

    def restart_redis(self) -> None:
        self.fault("redis")
        self.stack.restart_redis()

    def kill_api(self) -> None:
        self.fault("api")
        self.stack.kill_api()

    def stall_postgres(self) -> None:
        self.fault("postgres")
        self.stack.stall_postgres(self.options.stall_s)

    def inject(self, submitting: threading.Event) -> None:
        """Rounds of every fault in a random order, at random intervals, while jobs are being
        submitted, and at least --rounds of them."""
        kinds: list[Callable[[], None]] = [
            self.kill_pool_process,
            self.kill_worker,
            self.restart_redis,
            self.kill_api,
            self.stall_postgres,
            self.stop_worker,
        ]
        rounds = 0
        while rounds < self.options.rounds or submitting.is_set():
            plan = [*kinds, self.kill_pool_process]  # the most common death, twice
            self.rng.shuffle(plan)
            for fault in plan:
                time.sleep(self.rng.uniform(*self.options.gap_s))
                try:
                    fault()
                except Exception as error:  # the run goes on, and fails
                    log(f"fault injection stopped: {fault.__name__}: {error}")
                    self.injection_failed.append(f"fault injection: {fault.__name__}")
                    return
            rounds += 1

    # --- Report --------------------------------------------------------------------------

    def wait_for_drain(self, idle_s: float) -> bool:
        """Waits until every job has ended (True), or until none has ended for `idle_s` while
        some are left (False): those are stuck."""
        ended, progressed = -1, time.monotonic()
        while time.monotonic() - progressed < idle_s:
            with psycopg.connect(self.stack.dsn) as conn:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'canceled')),"
                    " count(*) FROM jobs"
                ).fetchone()
            assert row is not None
            if row[0] == row[1]:
                return True
            if row[0] > ended:
                ended, progressed = row[0], time.monotonic()
            time.sleep(0.5)
        return False

    def report(self, drain_s: float | None, fault_window: tuple[float, float]) -> bool:
        with psycopg.connect(self.stack.dsn) as conn:
            jobs = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT id::text, idempotency_key, status, error->>'type', attempts, "
                    "error->>'message' FROM jobs"
                )
            }
            steps_twice = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM events WHERE type = 'step.succeeded' "
                "GROUP BY job_id, payload->>'position' HAVING count(*) > 1) t"
            ).fetchone()
            ends_twice = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM events WHERE type LIKE 'job.%%' AND "
                "type IN ('job.succeeded', 'job.failed', 'job.canceled') GROUP BY job_id "
                "HAVING count(*) > 1) t"
            ).fetchone()
            artifacts_differ = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM events WHERE type = 'artifact.stored' "
                "GROUP BY job_id, payload->>'key' HAVING count(DISTINCT payload->>'sha256') > 1"
                ") t"
            ).fetchone()
            seq_duplicates = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM events GROUP BY job_id, seq "
                "HAVING count(*) > 1) t"
            ).fetchone()
            seq_gaps = conn.execute(
                "SELECT count(*) FROM (SELECT job_id FROM events GROUP BY job_id "
                "HAVING max(seq) <> count(*) OR min(seq) <> 1) t"
            ).fetchone()
            # Attempts given back at a graceful stop: they count in `attempts` (the fencing
            # token), not against max_attempts.
            given_back: Counter[str] = Counter(
                dict(
                    conn.execute(
                        "SELECT job_id::text, count(*) FROM events WHERE type = 'job.requeued' "
                        "AND payload->>'reason' = %s GROUP BY 1",
                        (SHUT_DOWN,),
                    ).fetchall()
                )
            )
            missing_artifacts = conn.execute(
                "SELECT count(*) FROM jobs j WHERE status = 'succeeded' AND "
                "(SELECT count(*) FROM artifacts a WHERE a.job_id = j.id) <> 2"
            ).fetchone()
            # Why attempts ended early (the requeues and the give-ups), the reason's first part.
            reasons = conn.execute(
                "SELECT split_part(payload->>'reason', ':', 1), count(*) FROM events "
                "WHERE payload ? 'reason' GROUP BY 1 ORDER BY 1"
            ).fetchall()
            restarts: dict[str, list[float]] = {}
            slow_jobs: list[tuple[Fault, str, float, list[tuple[str, float, str]]]] = []
            for fault in self.faults:
                for job_id in fault.jobs:
                    row = conn.execute(
                        "SELECT min(created_at) FROM events WHERE job_id = %s AND "
                        "type IN ('job.started', 'job.failed', 'job.canceled') AND "
                        "created_at > to_timestamp(%s)",
                        (job_id, fault.wall),
                    ).fetchone()
                    if row is not None and row[0] is not None:
                        seconds = row[0].timestamp() - fault.wall
                        restarts.setdefault(fault.name, []).append(seconds)
                        if seconds > RUNNING_AGAIN_GOAL_S:
                            slow_jobs.append((fault, job_id, seconds, _timeline(conn, job_id)))
        acknowledged = {job.job_id for job in self.submitted if job.job_id}
        by_key = Counter(row[0] for row in jobs.values())
        lost = len([job for job in self.submitted if job.job_id not in jobs])
        duplicated_jobs = sum(count - 1 for count in by_key.values() if count > 1) + len(
            set(jobs) - acknowledged
        )
        statuses = Counter(row[1] for row in jobs.values())
        failed = Counter(row[2] for row in jobs.values() if row[1] == "failed")
        stuck = sum(1 for row in jobs.values() if row[1] not in TERMINAL)
        # A job killed on every one of its attempts by injected faults rightly ends failed.
        kills = Counter(
            job_id for fault in self.faults if "SIGKILL" in fault.name for job_id in fault.jobs
        )
        exhausted_by_faults = 0
        wrong: list[tuple[Submitted, str, int]] = []  # the job, how it ended, its attempts
        for job in self.submitted:
            if job.job_id is None or job.job_id not in jobs:
                continue
            _, status, error, attempts, message = jobs[job.job_id]
            expected = ("failed", "attempts_exhausted") if job.poison else ("succeeded", None)
            if (status, error) == expected or status not in TERMINAL:
                continue
            killed_every_time = kills[job.job_id] >= attempts - given_back[job.job_id]
            if (status, error) == ("failed", "attempts_exhausted") and killed_every_time:
                exhausted_by_faults += 1
            else:
                wrong.append((job, f"{status} {error}: {message}", attempts))
        counts = {
            "submitted (acknowledged keys)": len(acknowledged),
            "submission requests (with retries)": sum(job.tries for job in self.submitted),
            "jobs in the database": len(jobs),
            "succeeded": statuses["succeeded"],
            "failed": sum(failed.values()),
            **{f"  failed: {reason}": count for reason, count in sorted(failed.items())},
            "poison jobs submitted": sum(job.poison for job in self.submitted),
            "non-poison jobs killed by faults on every attempt (failed, as they should)": (
                exhausted_by_faults
            ),
            "canceled": statuses["canceled"],
            "attempts that ended early (requeued or given up)": sum(n for _, n in reasons),
            **{f"  ended early: {reason}": count for reason, count in reasons},
            "lost (acknowledged, not in the database)": lost,
            "duplicated jobs (one key, several jobs)": duplicated_jobs,
            "stuck (not terminal, none ended for --stuck-after-s)": stuck,
            "wrong outcome (non-poison not succeeded, poison not attempts_exhausted)": len(wrong),
            "steps run to completion twice": _count(steps_twice),
            "jobs ended twice": _count(ends_twice),
            "artifacts written twice with different content": _count(artifacts_differ),
            "succeeded jobs without both artifacts": _count(missing_artifacts),
            "duplicate event seqs": _count(seq_duplicates),
            "jobs with a gap in their event seqs": _count(seq_gaps),
        }
        say(f"\nForge soak: {self.options.jobs} jobs, {len(self.faults)} faults, seed "
              f"{self.options.seed}")  # fmt: skip
        for name, value in counts.items():
            say(f"  {name:<72} {value}")
        say("faults injected:")
        for name, count in sorted(Counter(fault.name for fault in self.faults).items()):
            say(f"  {name:<72} {count}")
        restarts_label = f"worker restarts ({self.stack.restarted_by}) / api restarts"
        worker_restarts, api_restarts = self.stack.restarts()
        say(f"  {restarts_label:<72} {worker_restarts} / {api_restarts}")
        stops = ", ".join(f"{seconds:.1f}" for seconds in self.stop_times)
        say(f"  {'worker SIGTERM -> exit (s), grace ' + str(SHUTDOWN_GRACE_S) + ' s':<72} {stops}")
        say(f"  {'jobs given back to the queue at a graceful stop':<72} "
              f"{given_back.total()}")  # fmt: skip
        say("time from a fault to its jobs running again (s):")
        for name, values in sorted(restarts.items()):
            say(f"  {name:<72} n={len(values)} max={max(values):.1f} "
                  f"mean={sum(values) / len(values):.1f}")  # fmt: skip
        for fault, job_id, seconds, timeline in slow_jobs:
            say(f"  over {RUNNING_AGAIN_GOAL_S} s: job {job_id}, {seconds:.1f} s after "
                f"'{fault.name}'; its events (s from the fault):")  # fmt: skip
            for kind, at, detail in timeline:
                say(f"    {at - fault.wall:+8.1f} {kind} {detail}")
        first, last = fault_window
        say(f"  {'fault window (s)':<72} {last - first:.1f}")
        drained = "not drained" if drain_s is None else f"{drain_s:.1f}"
        say(f"  {'time to drain after the last fault and submission (s)':<72} {drained}")
        if wrong:
            say("wrong outcomes:")
            with psycopg.connect(self.stack.dsn) as conn:
                for job, ended, attempts in wrong:
                    timeline = _timeline(conn, str(job.job_id))
                    say(f"  job {job.job_id} ({job.model}{', poison' if job.poison else ''}): "
                        f"{ended}; {attempts} attempts, {kills[str(job.job_id)]} SIGKILLs "
                        "aimed at it; its events and the faults meanwhile (s from the first "
                        "event):")  # fmt: skip
                    begin, end = timeline[0][1], timeline[-1][1]
                    faults = [
                        ("fault", f.wall, f.name) for f in self.faults if begin <= f.wall <= end
                    ]
                    for kind, at, detail in sorted(timeline + faults, key=lambda line: line[1]):
                        say(f"    {at - begin:+8.1f} {kind} {detail}")
        bad = [
            "lost (acknowledged, not in the database)",
            "duplicated jobs (one key, several jobs)",
            "stuck (not terminal, none ended for --stuck-after-s)",
            "wrong outcome (non-poison not succeeded, poison not attempts_exhausted)",
            "steps run to completion twice",
            "jobs ended twice",
            "artifacts written twice with different content",
            "succeeded jobs without both artifacts",
            "duplicate event seqs",
            "jobs with a gap in their event seqs",
        ]
        failures = [name for name in bad if counts[name]]
        slow = [name for name, values in restarts.items() if max(values) > RUNNING_AGAIN_GOAL_S]
        slow += ["worker SIGTERM -> exit"] * any(t > SHUTDOWN_GRACE_S + 10 for t in self.stop_times)
        failures += self.injection_failed
        ok = not failures and not slow and drain_s is not None and len(jobs) == len(acknowledged)
        say("verdict: " + ("PASS" if ok else f"FAIL {failures + slow}"))
        return ok


def _timeline(conn: psycopg.Connection[Any], job_id: str) -> list[tuple[str, float, str]]:
    """The job's events: type, epoch seconds, and the payload's worker, reason or attempt."""
    return [
        (kind, at.timestamp(), detail or "")
        for kind, at, detail in conn.execute(
            "SELECT type, created_at, coalesce(payload->>'worker', payload->>'reason', "
            "payload->>'attempt') FROM events WHERE job_id = %s AND type LIKE 'job.%%' "
            "ORDER BY seq",
            (job_id,),
        )
    ]


def _count(row: tuple[int] | None) -> int:
    return 0 if row is None else int(row[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=sorted(STACKS), default="process")
    default_url = os.environ.get(
        "FORGE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--database-url", default=default_url, help="a PostgreSQL superuser URL")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--poison", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="times each fault is injected")
    parser.add_argument("--gap-s", type=float, nargs=2, default=(2.0, 6.0), help="between faults")
    parser.add_argument("--stall-s", type=float, default=4.0, help="PostgreSQL stall")
    parser.add_argument("--max-step-s", type=float, default=0.2, help="a step's longest duration")
    parser.add_argument("--rate", type=float, default=2.0, help="jobs submitted per second")
    parser.add_argument("--workers", type=int, default=2, help="worker processes or containers")
    parser.add_argument("--concurrency", type=int, default=2, help="each worker's pool size")
    parser.add_argument(
        "--stuck-after-s",
        type=float,
        default=60.0,
        help="jobs left when none has ended for this long are stuck",
    )
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument("--repo", default=".", help="--stack compose: the work tree")
    parser.add_argument("--compose-project", default="forge-chaos", help="--stack compose")
    options = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="forge-soak-"))
    soak = Soak(options)
    soak.plan_jobs()
    log(f"logs in {work}; {options.jobs} jobs ({options.poison} poison), seed {options.seed}")
    ok = False
    # A SIGTERM ends the run as Ctrl-C does: the stack is torn down (Compose's `down -v`).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with STACKS[options.stack](options, work) as soak.stack:
        started = time.monotonic()
        submitting = threading.Event()
        submitting.set()
        faults = threading.Thread(target=soak.inject, args=(submitting,), daemon=True)
        faults.start()
        soak.submit_all(started, options.rate)
        submitting.clear()
        submitted = time.monotonic()
        log(f"all {options.jobs} jobs acknowledged after {submitted - started:.1f} s")
        faults.join()
        last_fault = max(soak.faults[-1].at, submitted)
        drained = soak.wait_for_drain(options.stuck_after_s)
        drain_s = max(0.0, time.monotonic() - last_fault) if drained else None
        first_fault = soak.faults[0].at
        ok = soak.report(drain_s, (first_fault, last_fault))
    if ok and not options.keep:
        shutil.rmtree(work)
    else:
        log(f"logs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
