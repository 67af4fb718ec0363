"""Benchmark of job event streams on one api process (one uvicorn worker, the default pool of
5 + 10 connections), each figure next to its goal, measured in the same run:

- /healthz under wrk with no stream open, with N streams open, and with none again (goal: at
  least 0.5x the better of the two idle runs);
- commit -> client latency: events committed one per transaction to random jobs, each
  followed by one of the N streams, timed from just before COMMIT to the client reading the
  event's `id:` line (goal: p50 < 50 ms, p99 < 250 ms); then the same with all N streams
  following one job (every commit wakes all of them);
- the database connections the api holds (sampled from pg_stat_activity), against the pool's
  limit plus the one LISTEN connection.

The streams are raw sockets read by one asyncio thread of this process; events are written
with modules.jobs as the worker writes them. Run: `make bench-stream` (needs wrk and
PostgreSQL: FORGE_BENCH_DATABASE_URL)."""

import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import psycopg
from alembic import command
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import options
from benchmarks.api_http import UVICORN_LISTENING, server, wrk
from benchmarks.bare_apps import OWNER  # of the jobs, and of the API key the streams send
from modules.auth import keys
from modules.catalog.sync import sync
from modules.jobs import events
from modules.jobs.submission import Submission, submit
from modules.persistence.migrate import alembic_config
from modules.settings import Settings
from modules.testing.databases import libpq_url, recreate_database

HEALTH_GOAL = 0.5  # x the idle /healthz rate, at least
P50_GOAL_MS = 50
P99_GOAL_MS = 250
POOL_LIMIT: int = Settings.model_fields["database_pool_size"].default  # the api's pool
MODEL = "stub-icon@1"
BENCH_APPLICATION = "forge-bench"  # this process's connections, left out of the count
DELIVERY_TIMEOUT_S = 10


class Streams:
    """N open event streams, read on an asyncio loop in a thread of their own; each records
    when it read each event's id line."""

    def __init__(self, port: int, api_key: str) -> None:
        self._port = port
        self._api_key = api_key
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []
        # per stream: the job it follows, and seq -> time.monotonic() when read
        self.received: list[tuple[uuid.UUID, dict[int, float]]] = []

    def open(self, job_ids: list[uuid.UUID]) -> None:
        """One stream per entry, opened 25 at a time; returns once each has its first event."""
        for start in range(0, len(job_ids), 25):
            batch = job_ids[start : start + 25]
            self._run(self._open_all(batch)).result(timeout=120)

    def close(self) -> None:
        self._run(self._close_all()).result(timeout=60)

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _open_all(self, job_ids: list[uuid.UUID]) -> None:
        await asyncio.gather(*(self._open(job_id) for job_id in job_ids))

    async def _open(self, job_id: uuid.UUID) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        writer.write(
            f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {self._api_key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        received: dict[int, float] = {}
        self.received.append((job_id, received))
        self._writers.append(writer)
        first = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._read(reader, received, first)))
        await first.wait()

    async def _read(
        self, reader: asyncio.StreamReader, received: dict[int, float], first: asyncio.Event
    ) -> None:
        # Chunk-size lines of the chunked encoding come between events, never inside one.
        while line := await reader.readline():
            if line.startswith(b"id: "):
                received[int(line[4:])] = time.monotonic()
                first.set()

    async def _close_all(self) -> None:
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers, self._tasks, self.received = [], [], []


class ConnectionSampler:
    """The most connections to the database that are not this process's, sampled every 50 ms:
    the api's pooled connections and its LISTEN connection."""

    def __init__(self, database_url: str) -> None:
        self._url = libpq_url(database_url)
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "ConnectionSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        with psycopg.connect(self._url, application_name=BENCH_APPLICATION) as connection:
            while not self._stop.wait(0.05):
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name <> %s",
                    (BENCH_APPLICATION,),
                ).fetchone()
                connection.commit()
                assert row is not None
                self.most = max(self.most, int(row[0]))


def create_jobs(sessions: sessionmaker[Session], count: int) -> list[uuid.UUID]:
    with sessions() as session, session.begin():
        wanted = Submission(MODEL, {"prompt": "followed"})
        return [submit(session, wanted, owner=OWNER, max_attempts=3).job_id for _ in range(count)]


def commit_events(
    sessions: sessionmaker[Session], job_ids: list[uuid.UUID], count: int, rate: float
) -> list[tuple[uuid.UUID, int, float]]:
    """`count` step.log events at `rate` per second, each in a transaction of its own, to
    random jobs of `job_ids`: (job, seq, time just before COMMIT) each."""
    sent = []
    started = time.monotonic()
    for index in range(count):
        time.sleep(max(0.0, started + index / rate - time.monotonic()))
        job_id = random.choice(job_ids)
        with sessions() as session:
            (seq,) = events.append(
                session, job_id, events.NewEvent("step.log", {"message": f"event {index}"})
            )
            before = time.monotonic()
            session.commit()
        sent.append((job_id, seq, before))
    return sent


def latencies_ms(streams: Streams, sent: list[tuple[uuid.UUID, int, float]]) -> list[float]:
    """For each event sent, its latency on every stream that follows its job; waits for late
    deliveries and fails if one never comes."""
    readers: dict[uuid.UUID, list[dict[int, float]]] = {}
    for job_id, received in streams.received:
        readers.setdefault(job_id, []).append(received)
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    found: list[float] = []
    for job_id, seq, before in sent:
        for received in readers[job_id]:
            while seq not in received:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: event {seq} of job {job_id} never arrived")
                time.sleep(0.01)
            found.append((received[seq] - before) * 1000)
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextmanager
def engine(url: str) -> Iterator[Engine]:
    created = create_engine(url, connect_args={"application_name": BENCH_APPLICATION})
    try:
        yield created
    finally:
        created.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=500, help="open streams (500)")
    parser.add_argument("--seconds", type=int, default=10, help="per wrk measurement (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--events", type=int, default=500, help="events committed (500)")
    parser.add_argument("--rate", type=float, default=50, help="events per second (50)")
    parser.add_argument(
        "--fan-out-events", type=int, default=20, help="events to the one job all follow (20)"
    )
    options.add_database_url(parser, "forge_bench_stream")
    args = parser.parse_args(argv)
    options.require_wrk()

    database_url = recreate_database(args.database_url, "forge_bench_stream")
    settings = Settings.model_validate({"database_url": database_url})
    with alembic_config(settings) as config:
        command.upgrade(config, "head")
    env = {"FORGE_API_PORT": "0", "FORGE_API_WORKERS": "1", "FORGE_DATABASE_URL": database_url}
    forge = [sys.executable, "-m", "services.api.main"]
    seconds, connections = args.seconds, args.connections

    def progress(text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    with engine(database_url) as bench_engine, server(forge, UVICORN_LISTENING, **env) as url:
        sessions = sessionmaker(bench_engine, expire_on_commit=False)
        with sessions() as session, session.begin():
            sync(session)
            api_key = keys.create(session, name="bench-stream", owner=OWNER).key
        job_ids = create_jobs(sessions, args.streams)
        port = int(url.rsplit(":", 1)[1])
        health = f"{url}/healthz"

        progress(f"/healthz, no stream open: 2 s warm-up, then {seconds} s...")
        wrk(health, 2, connections)
        idle = wrk(health, seconds, connections)

        streams = Streams(port, api_key)
        with ConnectionSampler(database_url) as sampler:
            progress(f"opening {args.streams} streams, one per job...")
            opened = time.monotonic()
            streams.open(job_ids)
            open_s = time.monotonic() - opened
            progress(f"/healthz with {args.streams} streams open: {seconds} s...")
            busy = wrk(health, seconds, connections)
            progress(f"{args.events} events at {args.rate:.0f}/s to random followed jobs...")
            sent = commit_events(sessions, job_ids, args.events, args.rate)
            spread = latencies_ms(streams, sent)
            streams.close()

            progress(f"{args.streams} streams on one job, {args.fan_out_events} events at 5/s...")
            streams.open(job_ids[:1] * args.streams)
            sent = commit_events(sessions, job_ids[:1], args.fan_out_events, 5)
            fan_out = latencies_ms(streams, sent)
            streams.close()
        progress(f"/healthz, no stream open again: {seconds} s...")
        idle_after = wrk(health, seconds, connections)

    # Against the better idle run: load from outside this benchmark only lowers the ratio.
    baseline = max(idle, idle_after)
    ratio = busy[0] / baseline[0]
    print(f"one api process (1 uvicorn worker, pool {POOL_LIMIT}); wrk: 1 thread, {connections}")
    print(f"connections, {seconds} s per row; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'/healthz':<34}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    label = f"{args.streams} streams open"
    for name, (rate, p50, p99) in (
        ("no stream open", idle),
        (label, busy),
        ("no stream open, afterwards", idle_after),
    ):
        print(f"{name:<34}{rate:>10.0f}{p50:>9.2f}{p99:>9.2f}")
    verdict = "meets" if ratio >= HEALTH_GOAL else "MISSES"
    print(
        f"/healthz with {args.streams} streams at {ratio:.2f}x the better idle run: {verdict} "
        f"the {HEALTH_GOAL}x goal"
    )
    print(f"{args.streams} streams opened in {open_s:.1f} s ({args.streams / open_s:.0f}/s)")
    print(f"{'commit -> client latency':<34}{'events':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, values in (
        (f"one stream per job, {args.rate:.0f}/s", spread),
        (f"{args.streams} streams on one job", fan_out),
    ):
        print(
            f"{name:<34}{len(values):>10}{statistics.median(values):>9.1f}"
            f"{percentile(values, 0.99):>9.1f}{max(values):>9.1f}"
        )
    p50, p99 = statistics.median(spread), percentile(spread, 0.99)
    verdict = "meets" if p50 < P50_GOAL_MS and p99 < P99_GOAL_MS else "MISSES"
    print(
        f"one stream per job: p50 {p50:.1f} ms, p99 {p99:.1f} ms: {verdict} the goals "
        f"(p50 < {P50_GOAL_MS} ms, p99 < {P99_GOAL_MS} ms)"
    )
    verdict = "within" if sampler.most <= POOL_LIMIT + 1 else "OVER"
    print(
        f"database connections held by the api: at most {sampler.most}, {verdict} the pool's "
        f"{POOL_LIMIT} + 1 LISTEN connection, whatever the number of streams"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
