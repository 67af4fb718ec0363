"""Benchmark of the job path, each figure next to a bare baseline measured in the same run, by
turns with it (both run side by side, each idle while the other is measured), so that load from
outside weighs on both alike:

- submission: POST /v1/jobs (one uvicorn process, wrk as in `make bench-api`) vs a bare FastAPI
  endpoint inserting the same `jobs` row with the same driver and pool (bare_apps.jobs_app) into
  a database of its own, whose `jobs` table has no notifying trigger, and vs the same api without
  authentication (benchmarks.forge_without_auth); each run of either from an empty `jobs` table;
- end-to-end latency of the smallest job (`echo@1`: one step, one small artifact), submit ->
  succeeded, seen by a client on the job's event stream (modules.client), vs a bare Celery task
  round trip (apply_async + result) on the same Redis, one of each in turn; and, for reference,
  of a stub job (`stub-icon@1`: 3 steps, 2 PNG/JSON artifacts, progress and log events), each
  split at the transactions that queued, claimed and ended the job (from its events). Next to
  them, one S3 put of a small object, timed by this process: the S3 server here is a stand-in
  on the same cores, and its share of a job's time is not Forge's;
- throughput: jobs drained by the worker (2 prefork processes) vs bare Celery no-op tasks with
  the same concurrency, echo jobs and (once, for reference) stub jobs. The jobs are inserted in
  one transaction, whose commit has the reconciler's dispatcher send their run messages. With
  it, the CPU each job took in every process serving it (the worker's, the reconciler's,
  PostgreSQL's, Redis's, the S3 server's): the ceiling it puts on throughput on this machine;
- scale: submission, GET /v1/jobs/{id}, the listing's first page and one reconciler pass with
  0, 100k and 1M finished jobs (two events each) in the database;
- memory: RSS of the api and of each worker process, idle and after each of three runs.

Run: `make bench-jobs` (needs wrk, PostgreSQL and Redis: FORGE_BENCH_DATABASE_URL,
FORGE_BENCH_REDIS_URL)."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import redis
from alembic import command
from celery import Task
from sqlalchemy import ColumnElement, Engine, delete, func, select, text, true
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import cpu, options
from benchmarks.api_http import (
    UVICORN_LISTENING,
    Result,
    server_process,
    uvicorn_app,
    wrk,
)
from benchmarks.bare_apps import OWNER  # the benchmark's API key acts for it; _FILL writes it
from modules.auth import keys
from modules.catalog.sync import sync
from modules.client.sync import ForgeClient
from modules.jobs.reconcile import reconcile
from modules.jobs.submission import Submission, submit
from modules.persistence.base import JsonObject
from modules.persistence.engine import create_sync_database_engine
from modules.persistence.migrate import alembic_config
from modules.persistence.models import Job, Model
from modules.persistence.statuses import ACTIVE_JOB_STATUSES, JobStatus
from modules.settings import Settings
from modules.storage.s3 import ensure_bucket, make_s3_client, put_artifact
from modules.testing import s3_server
from modules.testing.databases import recreate_database
from modules.testing.processes import python_subprocess_env
from modules.workqueue import QUEUE
from services.worker.testing import WorkerProcess

SUBMIT_GOAL = 0.5  # x bare FastAPI requests/s, at least
AUTH_COST_GOAL = 0.10  # of the submission rate without authentication, at most
LATENCY_GOAL = 5.0  # x the bare Celery round trip's p50, at most
THROUGHPUT_GOAL = 0.25  # x bare Celery tasks/s, at least
RSS_GOAL_MB = 150
GROWTH_MB = 5  # "no growth": the last run's RSS at most this far above the first run's
MODEL = "echo@1"
JOB_INPUT: JsonObject = {"message": "a red square"}
# For reference: a job with a model's shape (step_duration_s 0).
STUB_MODEL = "stub-icon@1"
STUB_INPUT: JsonObject = {"prompt": "a red square", "width": 32, "height": 32}
RUNS = 3
# Between the latency samples taken by turns: what one side does after its sample (a job's
# acknowledgement, logs, a stream's end) must not weigh on the other's.
SETTLE_S = 0.05
# A job's end-to-end time, split at the transactions that queued, claimed and ended it (each
# event's created_at is its transaction's start).
PHASE_EVENTS = ("job.queued", "job.started", "job.succeeded")
PHASES = (
    "submit -> queued tx",
    "queued -> claim tx",
    "claim -> end tx",
    "end tx -> client",
)
# Owners the submission runs take turns with: thousands of jobs stay queued after a run (no worker
# runs then), under 100 an owner.
SUBMITTERS = 500
LIST_PAGE = 20  # GET /v1/jobs's default limit
FILL_BATCH = 100_000


@dataclass(frozen=True)
class Latency:
    name: str
    p50_ms: float
    p99_ms: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per wrk measurement (10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--round-trips", type=int, default=50, help="latency samples (50)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per throughput run (200)")
    parser.add_argument(
        "--tasks", type=int, default=1000, help="bare Celery tasks per throughput run (1000)"
    )
    parser.add_argument(
        "--scale",
        default="0,100000,1000000",
        help="finished jobs in the database for the scale rows (0,100000,1000000)",
    )
    options.add_database_url(parser, "forge_bench_jobs")
    options.add_redis_url(parser)
    args = parser.parse_args(argv)
    options.require_wrk()
    scale = [int(rows) for rows in args.scale.split(",")]

    # Redis databases 4-7, emptied first: Forge's broker and results, then the bare app's.
    base = args.redis_url.rstrip("/")
    for db in range(4, 8):
        redis.Redis.from_url(f"{base}/{db}").flushdb()
    env = {
        "FORGE_API_PORT": "0",
        "FORGE_DATABASE_URL": recreate_database(args.database_url, "forge_bench_jobs"),
        "FORGE_BROKER_URL": f"{base}/4",
        "FORGE_RESULT_BACKEND_URL": f"{base}/5",
        "FORGE_S3_BUCKET": "forge-bench",
        "FORGE_WORKER_CONCURRENCY": "2",
        # The reconciler runs for its dispatcher (new jobs' messages). Its pass runs at its
        # start and not again: it would take the lock that the scale rows' passes time.
        "FORGE_RECONCILE_INTERVAL_S": "300",
        # The queue cap is the default (FORGE_JOB_MAX_QUEUED_PER_OWNER, 100): the submission
        # runs spread their jobs over SUBMITTERS owners, none of which reaches it.
    }
    bare_env = {"BENCH_CELERY_BROKER_URL": f"{base}/6", "BENCH_CELERY_RESULT_URL": f"{base}/7"}
    os.environ.update(bare_env)

    s3_command = [sys.executable, "-m", s3_server.__name__]
    with server_process(s3_command, s3_server.READY_PATTERN) as (s3, s3_url):
        env["FORGE_S3_ENDPOINT_URL"] = s3_url
        settings = Settings.model_validate(
            {key.removeprefix("FORGE_").lower(): value for key, value in env.items()}
        )
        ensure_bucket(make_s3_client(settings), settings.s3_bucket)
        bare_database = _bare_database(args.database_url)
        engine = _migrated(settings)
        with Session(engine) as session, session.begin():
            key = keys.create(session, name="bench", owner=OWNER).key
            submitters = {
                f"{OWNER}-{n}": keys.create(session, name="bench", owner=f"{OWNER}-{n}").key
                for n in range(SUBMITTERS)
            }
        bench = Bench(args, settings, engine, key, submitters, s3.pid, bare_database)
        with tempfile.TemporaryDirectory() as scratch:
            bench.run(Path(scratch), env, scale)
        engine.dispose()
    bench.report(scale)
    return 0


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        settings: Settings,
        engine: Engine,
        key: str,
        submitters: dict[str, str],
        s3_pid: int,
        bare_database: str,
    ) -> None:
        self.args = args
        self.s3_pid = s3_pid
        self.bare_database = bare_database
        self.key = key
        self.submitters = submitters
        self.settings = settings
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.broker = redis.Redis.from_url(str(settings.broker_url))
        self.submit: list[Result] = []
        self.bare_submit: list[Result] = []  # taken by turns with Forge's
        self.without_auth: list[Result] = []
        self.latency: list[Latency] = []  # echo, stub, bare
        self.s3_put: Latency | None = None
        self.phases: dict[str, list[Latency]] = {}  # model -> its end-to-end time, split
        # (name, count, seconds): echo x RUNS, stub; the bare runs, taken by turns with echo's
        self.throughput: list[tuple[str, int, float]] = []
        self.bare_throughput: list[tuple[str, int, float]] = []
        # (name, requests or jobs, {process group: CPU seconds during them})
        self.submission_cpu: list[tuple[str, int, dict[str, float]]] = []
        self.throughput_cpu: list[tuple[str, int, dict[str, float]]] = []
        self.scale: dict[int, list[float]] = {}
        self.rss: dict[str, list[tuple[str, float]]] = {}

    def run(self, scratch: Path, env: dict[str, str], scale: list[int]) -> None:
        self.get_script = scratch / "get.lua"
        self.get_script.write_text(f'wrk.headers["Authorization"] = "Bearer {self.key}"\n')
        script = scratch / "post.lua"
        script.write_text(_post_script(self.submitters))
        forge = [sys.executable, "-m", "services.api.main"]
        with server_process(forge, UVICORN_LISTENING, **env) as (api_process, api_url):
            api = api_process.pid
            # Runs throughout, for its dispatcher: new jobs' run messages.
            reconciler = WorkerProcess(scratch / "reconciler.log", args=["reconcile"], **env)
            try:
                self.reconciler = reconciler.process.pid
                self._rss("api", "idle", api)
                self._rss("reconciler", "idle", self.reconciler)
                self._submission(api, api_url, script, env)
                self._start_afresh()
                self._jobs(scratch, api, api_url, env)
                self._clear_jobs()
                for rows in scale:
                    self.scale[rows] = self._scale(rows, api_url, script)
            finally:
                reconciler.kill()

    def _jobs(self, scratch: Path, api: int, api_url: str, env: dict[str, str]) -> None:
        """Latency and throughput. Both workers run from here on, each idle while the other is
        measured: Forge's figures and their baselines are taken by turns, under the same load
        from outside."""
        from benchmarks import bare_celery  # reads the Redis URLs main() put in os.environ

        self.noop = bare_celery.noop
        bare_log = scratch / "bare-worker.log"
        worker = WorkerProcess(scratch / "worker.log", **env)
        try:
            with bare_worker(bare_log, bare_celery.__name__, self.noop) as bare_main:
                self._measure_jobs(api, api_url, worker.process.pid, bare_main)
            worker.stop()
        finally:
            worker.process.kill()

    def _submission(self, api: int, api_url: str, script: Path, env: dict[str, str]) -> None:
        """Forge's POST, the same without authentication, and the bare endpoint, by turns."""
        args = self.args
        without_auth = [sys.executable, "-m", "benchmarks.forge_without_auth"]
        bare_app = uvicorn_app("benchmarks.bare_apps:jobs_app")
        with (
            server_process(without_auth, UVICORN_LISTENING, **env) as (open_process, open_url),
            server_process(
                bare_app, UVICORN_LISTENING, **{**env, "FORGE_DATABASE_URL": self.bare_database}
            ) as (bare_process, bare_url),
        ):
            _progress(
                f"POST: Forge's, without authentication and the bare endpoint by turns: 2 s "
                f"warm-up each, then {RUNS} x {args.seconds} s each"
            )
            urls = (f"{api_url}/v1/jobs", f"{open_url}/v1/jobs", f"{bare_url}/jobs")
            for url in urls:
                wrk(url, 2, args.connections, script)
            forge_groups = {
                "api": cpu.fixed(api),
                "reconciler": cpu.fixed(self.reconciler),
                **self._servers(),
            }
            open_groups = {**forge_groups, "api": cpu.fixed(open_process.pid)}
            bare_groups = {"api": cpu.fixed(bare_process.pid), **self._servers()}
            bare_used: dict[str, float] = {}
            bare_requests = 0
            for run in range(1, RUNS + 1):
                name = f"forge POST /v1/jobs #{run}"
                self._forge_post_run(urls[0], script, forge_groups, name, self.submit)
                self._rss("api", f"after submission run {run}", api)
                name = f"  without authentication #{run}"
                self._forge_post_run(urls[1], script, open_groups, name, self.without_auth)
                with cpu.measured(bare_groups) as used:
                    rate = wrk(urls[2], args.seconds, args.connections, script)
                self.bare_submit.append(Result(f"bare FastAPI POST /jobs #{run}", *rate))
                cpu.add(bare_used, used)
                bare_requests += round(rate[0] * args.seconds)
            self.submission_cpu.append(("bare FastAPI POST /jobs", bare_requests, bare_used))

    def _forge_post_run(
        self,
        url: str,
        script: Path,
        groups: dict[str, cpu.Group],
        name: str,
        results: list[Result],
    ) -> None:
        """One POST run of Forge's api, from an empty queue: the jobs of the run before would
        weigh on this one (each submission counts its owner's queued jobs)."""
        self._start_afresh()
        with cpu.measured(groups) as used:
            rate = wrk(url, self.args.seconds, self.args.connections, script)
        results.append(Result(name, *rate))
        self.submission_cpu.append((name, round(rate[0] * self.args.seconds), used))

    def _measure_jobs(self, api: int, api_url: str, worker: int, bare_main: int) -> None:
        args = self.args
        pids = self._worker_pids(worker)
        for name, pid in pids.items():
            self._rss(name, "idle", pid)
        echo, bare = self._forge_latency(api_url, MODEL, JOB_INPUT, self._bare_round_trip)
        stub, _ = self._forge_latency(api_url, STUB_MODEL, STUB_INPUT)
        self.latency += [echo, stub, _latency("bare Celery round trip", bare)]
        self._rss("api", "after the latency runs", api)
        self.s3_put = self._s3_put()
        self._clear_jobs()
        forge_groups = {
            "worker pool": cpu.fixed(*(pid for name, pid in pids.items() if "pool" in name)),
            "worker main": cpu.fixed(pids["worker main"]),
            "reconciler": cpu.fixed(self.reconciler),
            **self._servers(),
            "S3 stand-in": cpu.fixed(self.s3_pid),
        }
        bare_groups = {
            "worker pool": cpu.fixed(*_children(bare_main)),
            "worker main": cpu.fixed(bare_main),
            **self._servers(),
        }
        forge_used: dict[str, float] = {}
        bare_used: dict[str, float] = {}
        for run in range(1, RUNS + 1):
            with cpu.measured(forge_groups) as used:
                self.throughput.append(self._forge_throughput(f"run {run}", MODEL, JOB_INPUT))
            cpu.add(forge_used, used)
            for name, pid in {**pids, "reconciler": self.reconciler}.items():
                self._rss(name, f"after throughput run {run}", pid)
            with cpu.measured(bare_groups) as used:
                self.bare_throughput.append(self._bare_throughput(f"run {run}"))
            cpu.add(bare_used, used)
        self.throughput_cpu.append((f"forge {MODEL}", RUNS * args.jobs, forge_used))
        with cpu.measured(forge_groups) as used:
            self.throughput.append(self._forge_throughput("once", STUB_MODEL, STUB_INPUT))
        self.throughput_cpu.append((f"forge {STUB_MODEL}", args.jobs, used))
        self.throughput_cpu.append(("bare Celery no-op tasks", RUNS * args.tasks, bare_used))

    def _forge_latency(
        self,
        api_url: str,
        model: str,
        input: JsonObject,
        by_turns_with: Callable[[], float] | None = None,
    ) -> tuple[Latency, list[float]]:
        """`model`'s submit -> succeeded, round_trips jobs after 5 to warm up. With
        `by_turns_with` (a baseline's round trip, returning its seconds), one of it after each
        job, SETTLE_S apart, so that both are sampled under the same conditions; its samples are
        returned too."""
        count = self.args.round_trips
        turns = "" if by_turns_with is None else ", each followed by a bare Celery round trip"
        _progress(f"forge {model} submit -> succeeded, on the event stream: {count} jobs{turns}")
        samples: list[float] = []
        baseline: list[float] = []
        phases: dict[str, list[float]] = {name: [] for name in PHASES}
        with ForgeClient(api_url, api_key=self.key, timeout=30) as client:
            for index in range(count + 5):  # the first 5 warm up
                seconds, split = self._forge_round_trip(client, model, input)
                if by_turns_with is not None:
                    time.sleep(SETTLE_S)
                    other = by_turns_with()
                    time.sleep(SETTLE_S)
                if index < 5:
                    continue
                samples.append(seconds)
                if by_turns_with is not None:
                    baseline.append(other)
                for name, value in zip(PHASES, split, strict=True):
                    phases[name].append(value)
        self.phases[model] = [_latency(name, values) for name, values in phases.items()]
        return _latency(f"forge {model}", samples), baseline

    def _bare_round_trip(self) -> float:
        started = time.perf_counter()
        self.noop.apply_async().get(timeout=30)
        return time.perf_counter() - started

    @staticmethod
    def _forge_round_trip(
        client: ForgeClient, model: str, input: JsonObject
    ) -> tuple[float, list[float]]:
        """One job, submit -> succeeded on its event stream: the seconds it took, and the same
        split at the transactions that queued, claimed and ended it (PHASES)."""
        started, submitted_at = time.perf_counter(), datetime.now(UTC)
        job = client.submit(model, input)
        seen = {event.type: event.created_at for event in client.stream_events(job.id)}
        done, done_at = time.perf_counter(), datetime.now(UTC)
        if "job.succeeded" not in seen:
            raise SystemExit(f"bench: job {job.id} ended with {list(seen)[-1:]}")
        # An event's created_at is its transaction's start (PostgreSQL's now()).
        marks = [submitted_at, *(seen[kind] for kind in PHASE_EVENTS), done_at]
        split = [(end - begin).total_seconds() for begin, end in pairwise(marks)]
        return done - started, split

    def _s3_put(self) -> Latency:
        """One small object stored as the worker stores an artifact: the part of a job's time
        that is the S3 server's (here a stand-in on the same cores) and the HTTP round trip."""
        count = self.args.round_trips
        client = make_s3_client(self.settings)
        data = json.dumps(JOB_INPUT).encode()
        samples = []
        for index in range(count + 5):
            started = time.perf_counter()
            put_artifact(
                client, self.settings.s3_bucket, f"bench/{index}", data, "application/json"
            )
            if index >= 5:
                samples.append(time.perf_counter() - started)
        return _latency("  of which one S3 put", samples)

    def _forge_throughput(self, run: str, model: str, input: JsonObject) -> tuple[str, int, float]:
        count = self.args.jobs
        _progress(f"forge throughput, {model} {run}: {count} jobs")
        with self.sessions() as session, session.begin():
            for _ in range(count):
                submit(session, Submission(model, input), owner=OWNER, max_attempts=3)
        started = time.perf_counter()  # the commit: the dispatcher sends the messages
        while self._count(Job.status.in_(ACTIVE_JOB_STATUSES)):
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        if failed := self._count(Job.status != JobStatus.SUCCEEDED):
            raise SystemExit(f"bench: {failed} jobs did not succeed")
        self._clear_jobs()
        return f"forge {model} {run}", count, elapsed

    def _bare_throughput(self, run: str) -> tuple[str, int, float]:
        count = self.args.tasks
        _progress(f"bare Celery throughput {run}: {count} no-op tasks")
        started = time.perf_counter()
        results = [self.noop.apply_async() for _ in range(count)]
        for result in results:
            result.get(timeout=120)
        return f"bare Celery no-op tasks {run}", count, time.perf_counter() - started

    def _scale(self, rows: int, api_url: str, script: Path) -> list[float]:
        self._fill(rows)
        seconds, connections = max(self.args.seconds // 2, 1), self.args.connections
        _progress(f"scale, {rows} finished jobs: POST, GET, list, reconcile ({seconds} s each)")
        posted = wrk(f"{api_url}/v1/jobs", seconds, connections, script)
        # The benchmark's own owner holds the finished jobs; a page of queued ones on top is
        # what GET and the listing's first page read, in front of `rows` older ones.
        with self.sessions() as session, session.begin():
            for _ in range(LIST_PAGE):
                submit(session, Submission(MODEL, JOB_INPUT), owner=OWNER, max_attempts=3)
        with self.sessions() as session:
            newest = session.scalar(
                select(Job.id).where(Job.owner == OWNER).order_by(Job.created_at.desc()).limit(1)
            )
        got = wrk(f"{api_url}/v1/jobs/{newest}", seconds, connections, self.get_script)
        listed = wrk(f"{api_url}/v1/jobs", seconds, connections, self.get_script)
        passes = []
        for _ in range(20):
            started = time.perf_counter()
            reconcile(self.sessions, _NoQueue())
            passes.append(time.perf_counter() - started)
        # The submitted jobs go, so the next row starts from its own count.
        with self.sessions() as session, session.begin():
            session.execute(delete(Job).where(Job.status == JobStatus.QUEUED))
        self.broker.flushdb()
        reconciled = _latency("reconcile", passes)
        return [*posted, *got, *listed, reconciled.p50_ms, reconciled.p99_ms]

    def _fill(self, rows: int) -> None:
        """Finished jobs with two events each, older than any job the benchmark submits."""
        have = self._count(Job.status == JobStatus.SUCCEEDED)
        if rows <= have:
            return
        _progress(f"filling: {have} -> {rows} finished jobs (with 2 events each)")
        started = time.perf_counter()
        with self.sessions() as session:
            model_id = session.scalar(select(Model.id).where(Model.name == MODEL.split("@")[0]))
        for first in range(have, rows, FILL_BATCH):
            with self.sessions() as session, session.begin():
                session.execute(
                    _FILL,
                    {
                        "model_id": model_id,
                        "first": first + 1,
                        "last": min(first + FILL_BATCH, rows),
                        "input": json.dumps(JOB_INPUT),
                    },
                )
        with self.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text("VACUUM ANALYZE jobs, events"))
        _progress(f"filled in {time.perf_counter() - started:.0f} s")

    def _count(self, where: ColumnElement[bool]) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Job).where(where)) or 0

    def _servers(self) -> dict[str, cpu.Group]:
        """PostgreSQL's and Redis's processes: on this machine (the benchmark's own queries,
        polling for the drain's end, count too; little next to the jobs')."""
        return {
            "PostgreSQL": cpu.named("postgres"),
            "Redis": cpu.fixed(int(self.broker.info("server")["process_id"])),
        }

    def _start_afresh(self) -> None:
        """No job and no message. The servers may still commit requests whose client (wrk) has
        gone, and the dispatcher send their messages: a job left queued, or a message, would
        take part in what is measured next."""
        self._wait_until_no_job_is_added()
        self._wait_until_every_job_has_its_message()
        self._clear_jobs()

    def _wait_until_no_job_is_added(self) -> None:
        counted = -1
        while (count := self._count(true())) != counted:
            counted = count
            time.sleep(0.5)

    def _wait_until_every_job_has_its_message(self) -> None:
        """No worker runs: every job is queued still, with its message waiting."""
        deadline = time.monotonic() + 60
        while (messages := self.broker.llen(QUEUE)) != (jobs := self._count(true())):
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {jobs} jobs queued, {messages} run messages")
            time.sleep(0.5)

    def _clear_jobs(self) -> None:
        with self.sessions() as session, session.begin():
            session.execute(text("TRUNCATE jobs CASCADE"))
        self.broker.flushdb()

    def _worker_pids(self, main: int) -> dict[str, int]:
        pool = _children(main)
        if len(pool) != 2:
            raise SystemExit(f"bench: the worker has {len(pool)} pool processes, not 2")
        return {"worker main": main, **{f"worker pool {i}": pid for i, pid in enumerate(pool, 1)}}

    def _rss(self, process: str, when: str, pid: int) -> None:
        self.rss.setdefault(process, []).append((when, _rss_mb(pid)))

    def report(self, scale: list[int]) -> None:
        args = self.args
        print(
            f"wrk: 1 thread, {args.connections} connections, {args.seconds} s per row after a "
            f"2 s warm-up; job: {MODEL} {json.dumps(JOB_INPUT)} (1 step, 1 artifact); for "
            f"reference {STUB_MODEL} {json.dumps(STUB_INPUT)} (3 steps, 2 artifacts)"
        )
        print(f"\n{'submission':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>10}")
        bare = statistics.median(r.requests_per_s for r in self.bare_submit)
        for result in [*self.submit, *self.without_auth, *self.bare_submit]:
            print(
                f"{result.name:<28}{result.requests_per_s:>10.0f}{result.p50_ms:>9.2f}"
                f"{result.p99_ms:>9.2f}{result.requests_per_s / bare:>9.2f}x"
            )
        _report_cpu("CPU per submission, ms", self.submission_cpu)
        print(f"\n{'end to end':<28}{'p50 ms':>10}{'p99 ms':>9}{'vs bare':>10}")
        for latency in self.latency:
            ratio = latency.p50_ms / self.latency[-1].p50_ms
            print(f"{latency.name:<28}{latency.p50_ms:>10.1f}{latency.p99_ms:>9.1f}{ratio:>9.1f}x")
            for phase in self.phases.get(latency.name.removeprefix("forge "), []):
                print(f"  {phase.name:<26}{phase.p50_ms:>10.1f}{phase.p99_ms:>9.1f}")
            if latency is self.latency[0] and self.s3_put is not None:
                put = self.s3_put
                print(f"{put.name:<28}{put.p50_ms:>10.1f}{put.p99_ms:>9.1f}")
        print(f"\n{'throughput, 2 processes':<28}{'count':>10}{'s':>9}{'per s':>9}{'vs bare':>10}")
        bare_rate = _median_rate(self.bare_throughput)
        for name, count, seconds in [*self.throughput, *self.bare_throughput]:
            rate = count / seconds
            print(f"{name:<28}{count:>10}{seconds:>9.1f}{rate:>9.1f}{rate / bare_rate:>9.2f}x")
        _report_cpu("CPU per job drained, ms", self.throughput_cpu)
        print(
            f"\n{'scale: finished jobs':<22}{'POST req/s':>11}{'p50':>7}{'p99':>7}"
            f"{'GET req/s':>10}{'p50':>7}{'p99':>7}{'list req/s':>11}{'p50':>7}{'p99':>7}"
            f"{'reconcile p50':>14}{'max':>7}   (ms)"
        )
        for rows in scale:
            v = self.scale[rows]
            print(
                f"{rows:<22,}{v[0]:>11.0f}{v[1]:>7.1f}{v[2]:>7.1f}{v[3]:>10.0f}{v[4]:>7.1f}"
                f"{v[5]:>7.1f}{v[6]:>11.0f}{v[7]:>7.1f}{v[8]:>7.1f}{v[9]:>14.1f}{v[10]:>7.1f}"
            )
        print("\nRSS, MB")
        for process, samples in self.rss.items():
            print(f"{process:<14}" + "; ".join(f"{when} {mb:.0f}" for when, mb in samples))
        print()
        self._verdicts()
        print(
            "Reproduce: make bench-jobs, or ./pants run src/python/benchmarks:jobs -- "
            f"--seconds {args.seconds} --round-trips {args.round_trips} --jobs {args.jobs} "
            f"--tasks {args.tasks} --scale {args.scale}"
        )

    def _verdicts(self) -> None:
        forge_submit = statistics.median(r.requests_per_s for r in self.submit)
        ratio = forge_submit / statistics.median(r.requests_per_s for r in self.bare_submit)
        _verdict(
            ratio >= SUBMIT_GOAL,
            f"submission at {ratio:.2f}x bare FastAPI (medians of {RUNS} runs each, by turns)",
            f"the >= {SUBMIT_GOAL}x goal",
        )
        without_auth = statistics.median(r.requests_per_s for r in self.without_auth)
        cost = 1 - forge_submit / without_auth
        _verdict(
            cost <= AUTH_COST_GOAL,
            f"authentication costs {cost:.0%} of the submission rate (medians, taken by turns)",
            f"the <= {AUTH_COST_GOAL:.0%} goal",
        )
        ratio = self.latency[0].p50_ms / self.latency[-1].p50_ms
        _verdict(
            ratio <= LATENCY_GOAL,
            f"end-to-end p50 at {ratio:.1f}x the bare Celery round " "trip",
            f"the <= {LATENCY_GOAL:g}x goal",
        )
        ratio = _median_rate(self.throughput[:RUNS]) / _median_rate(self.bare_throughput)
        _verdict(
            ratio >= THROUGHPUT_GOAL,
            f"throughput at {ratio:.2f}x bare Celery (medians of {RUNS} runs each, by turns)",
            f"the >= {THROUGHPUT_GOAL}x goal",
        )
        for process, samples in self.rss.items():
            peak = max(mb for _, mb in samples)
            runs = [mb for when, mb in samples if "run" in when]
            growth = runs[-1] - runs[0]
            _verdict(
                peak < RSS_GOAL_MB and growth <= GROWTH_MB,
                f"{process} RSS peak "
                f"{peak:.0f} MB, {growth:+.0f} MB from the first run to the last",
                f"the < {RSS_GOAL_MB} MB, no growth (<= {GROWTH_MB} MB) goal",
            )


def _report_cpu(table: str, rows: list[tuple[str, int, dict[str, float]]]) -> None:
    """Each row's CPU per request or job in each process group, and the rate that much CPU
    allows at most on this machine's cores."""
    groups = list(dict.fromkeys(group for _, _, used in rows for group in used))
    cores = os.cpu_count() or 1
    print(
        f"\n{table:<28}" + "".join(f"{group:>13}" for group in groups)
        + f"{'total':>8}{'ceiling on ' + str(cores) + ' cores':>22}"
    )  # fmt: skip
    for name, count, used in rows:
        per_job = {group: seconds * 1000 / count for group, seconds in used.items()}
        total = sum(per_job.values())
        print(
            f"{name:<28}" + "".join(
                f"{per_job[group]:>13.2f}" if group in per_job else f"{'-':>13}"
                for group in groups
            ) + f"{total:>8.2f}{cores * 1000 / total:>16.0f} /s"
        )  # fmt: skip


def _post_script(submitters: dict[str, str]) -> str:
    """wrk's Lua: POST /v1/jobs, each request as the next of the submitters (owner -> key), in
    turn. The owner also goes in X-Bench-Owner, for the api without authentication."""
    body = json.dumps({"model": MODEL, "input": JOB_INPUT})
    owners = ", ".join(f'{{"{owner}", "{key}"}}' for owner, key in submitters.items())
    return f"""
wrk.method = "POST"
wrk.body = {json.dumps(body)}
wrk.headers["Content-Type"] = "application/json"
local submitters = {{{owners}}}
local turn = 0
request = function()
  turn = turn % #submitters + 1
  wrk.headers["Authorization"] = "Bearer " .. submitters[turn][2]
  wrk.headers["X-Bench-Owner"] = submitters[turn][1]
  return wrk.format()
end
"""


# Finished jobs $first..$last, one second apart, older than now; two events each.
_FILL = text("""
    WITH new AS (
        INSERT INTO jobs (model_id, owner, status, input, attempts, last_event_seq, created_at,
                          updated_at, started_at, finished_at)
        SELECT :model_id, 'bench', 'succeeded', CAST(:input AS jsonb), 1, 2, at, at, at, at
        FROM (SELECT now() - make_interval(secs => g) - interval '1 day' AS at
              FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g) AS times
        RETURNING id, created_at
    )
    INSERT INTO events (job_id, seq, type, payload, created_at)
    SELECT new.id, e.seq, e.type, CAST(e.payload AS jsonb), new.created_at
    FROM new CROSS JOIN (VALUES (1, 'job.queued', '{"status": "queued"}'),
                                (2, 'job.succeeded', '{"status": "succeeded"}'))
        AS e(seq, type, payload)
    """)


def _bare_database(server_url: str) -> str:
    """The bare endpoint's database: Forge's schema without the trigger that notifies the
    reconciler of new jobs, which a bare service would not have."""
    url = recreate_database(server_url, "forge_bench_bare")
    engine = _migrated(Settings.model_validate({"database_url": url}))
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER jobs_notify_queued ON jobs"))
    engine.dispose()
    return url


def _migrated(settings: Settings) -> Engine:
    """An engine on the settings' database, migrated to the latest revision, with the
    catalog's models."""
    with alembic_config(settings) as config:
        command.upgrade(config, "head")
    engine = create_sync_database_engine(settings)
    with Session(engine) as session, session.begin():
        sync(session)
    return engine


class _NoQueue:
    """The reconciler's queue with nothing waiting, sending nowhere: the pass's scan alone."""

    def waiting(self) -> int:
        return 0

    def send(self, count: int) -> None:
        pass


@contextmanager
def bare_worker(log: Path, app: str, noop: Task[[], None]) -> Iterator[int]:
    """The bare Celery worker, 2 prefork processes, consuming once this yields its main
    process's pid."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--concurrency",
        "2",
        "--loglevel",
        "WARNING",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=python_subprocess_env(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        noop.apply_async().get(timeout=60)  # up and consuming
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def _median_rate(runs: list[tuple[str, int, float]]) -> float:
    return statistics.median(count / seconds for _, count, seconds in runs)


def _latency(name: str, seconds: list[float]) -> Latency:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return Latency(name, cuts[49] * 1000, cuts[98] * 1000)


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"bench: no RSS for process {pid}")


def _verdict(met: bool, what: str, goal: str) -> None:
    print(f"{what}: {'MEETS' if met else 'MISSES'} {goal}")


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
