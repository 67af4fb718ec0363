"""The executor alone: what running one zero-duration job costs the worker, without Celery,
Redis or the api in the way. Runs --jobs jobs of --model (`stub-icon@1`: 3 steps, 2 artifacts;
`echo@1`: 1 step, 1 artifact) one after another through `Executor.run` in this process
(PostgreSQL, and an S3 server over HTTP) and prints the time per job (p50, mean) and the CPU it
took in this process, the commits and statements each job made (the submission's included) with
the statements' time as the driver saw it, and its S3 uploads with their time: what is left of a
job's time is Python's (the runner, the ORM, the lease keeper's thread).
ADRs 014 and 015 compare these figures before and after the job path's transactions were merged.

Run: `./pants run src/python/benchmarks:executor` (PostgreSQL: FORGE_BENCH_DATABASE_URL)."""

import argparse
import statistics
import sys
import time

from alembic import command
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import options
from benchmarks.api_http import server
from modules.catalog.sync import sync
from modules.jobs.execution import ArtifactStore, Executor, Outcome, StoredObject
from modules.jobs.submission import Submission, submit
from modules.persistence.engine import create_sync_database_engine
from modules.persistence.migrate import alembic_config
from modules.runners.registry import get_runner
from modules.settings import Settings
from modules.storage.s3 import S3ArtifactStore, ensure_bucket, make_s3_client
from modules.testing import s3_server
from modules.testing.databases import recreate_database

JOBS = {
    "stub-icon@1": Submission("stub-icon@1", {"prompt": "a red square", "width": 32, "height": 32}),
    "echo@1": Submission("echo@1", {"message": "a red square"}),
}
WARM_UP = 3


class Tally:
    """What the jobs cost: commits, statements and their time (as the driver saw them), S3
    uploads and their time."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.commits = self.statements = self.uploads = 0
        self.sql_s = self.upload_s = 0.0

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _commit(self, *_: object) -> None:
        self.commits += 1

    def _before(self, connection: Connection, *_: object) -> None:
        connection.info["bench_started"] = time.perf_counter()

    def _after(self, connection: Connection, *_: object) -> None:
        self.statements += 1
        self.sql_s += time.perf_counter() - connection.info.pop("bench_started")


class TimedStore:
    """The S3 store, timed."""

    def __init__(self, store: ArtifactStore, tally: Tally) -> None:
        self._store, self._tally = store, tally

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        started = time.perf_counter()
        try:
            return self._store.put(key, data, content_type)
        finally:
            self._tally.uploads += 1
            self._tally.upload_s += time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50, help="jobs measured (50)")
    parser.add_argument("--model", choices=sorted(JOBS), default="stub-icon@1")
    options.add_database_url(parser, "forge_bench_executor")
    args = parser.parse_args(argv)
    database_url = recreate_database(args.database_url, "forge_bench_executor")
    with server([sys.executable, "-m", s3_server.__name__], s3_server.READY_PATTERN) as s3_url:
        settings = Settings.model_validate(
            {"database_url": database_url, "s3_endpoint_url": s3_url, "s3_bucket": "forge-bench"}
        )
        client = make_s3_client(settings)
        ensure_bucket(client, settings.s3_bucket)
        with alembic_config(settings) as config:
            command.upgrade(config, "head")
        engine = create_sync_database_engine(settings)
        sessions = sessionmaker(engine, expire_on_commit=False)
        with Session(engine) as session, session.begin():
            sync(session)
        tally = Tally()
        store = TimedStore(S3ArtifactStore(client, settings.s3_bucket), tally)
        executor = Executor(sessions, store, get_runner, owner="bench:1", lease_s=30)
        tally.listen(engine)

        cpu_s = 0.0  # this process's, all its threads, from the claim to the job's end

        def one() -> float:
            nonlocal cpu_s
            with sessions() as session, session.begin():
                submit(session, JOBS[args.model], owner="bench", max_attempts=3)
            started, cpu_started = time.perf_counter(), time.process_time()
            claimed = executor.claim_next()
            assert claimed is not None
            if executor.run(claimed).outcome != Outcome.SUCCEEDED:
                raise SystemExit(f"bench: job {claimed.claim.job_id} did not succeed")
            cpu_s += time.process_time() - cpu_started
            return (time.perf_counter() - started) * 1000

        for _ in range(WARM_UP):
            one()
        tally.reset()
        cpu_s = 0.0
        samples = [one() for _ in range(args.jobs)]
        engine.dispose()
    jobs = args.jobs
    print(
        f"{jobs} {args.model} jobs through Executor.run: p50 {statistics.median(samples):.1f}"
        f" ms, mean {statistics.mean(samples):.1f} ms, CPU {cpu_s / jobs * 1000:.1f} ms (this "
        f"process's, claim to end); per job (submission included) "
        f"{tally.commits / jobs:.1f} commits, {tally.statements / jobs:.1f} statements taking "
        f"{tally.sql_s / jobs * 1000:.1f} ms, {tally.uploads / jobs:.1f} S3 uploads taking "
        f"{tally.upload_s / jobs * 1000:.1f} ms"
    )
    print(
        "Reproduce: ./pants run src/python/benchmarks:executor -- "
        f"--jobs {args.jobs} --model {args.model}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
