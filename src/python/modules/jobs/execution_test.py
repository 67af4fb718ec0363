"""The executor with the stub runner, PostgreSQL and an S3 server over HTTP."""

import dataclasses
import hashlib
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pydantic import AnyHttpUrl
from sqlalchemy import Engine, select, text, update
from sqlalchemy.event import listen, remove
from sqlalchemy.orm import Session, sessionmaker

from modules.jobs import cancel, events, submission
from modules.jobs.execution import Executor, Outcome
from modules.persistence.base import JsonValue
from modules.persistence.models import Artifact, Job, Model, Step
from modules.persistence.statuses import JobStatus, StepStatus
from modules.runners.base import StepContext
from modules.runners.registry import get_runner
from modules.settings import Settings
from modules.storage.s3 import S3ArtifactStore, ensure_bucket, make_s3_client

BUCKET = "forge-test-artifacts"


@pytest.fixture()
def store(s3_endpoint_url: str) -> S3ArtifactStore:
    client = make_s3_client(Settings(s3_endpoint_url=AnyHttpUrl(s3_endpoint_url)))
    ensure_bucket(client, BUCKET)
    return S3ArtifactStore(client, BUCKET)


@pytest.fixture()
def executor(sessions: sessionmaker[Session], store: S3ArtifactStore) -> Executor:
    return Executor(sessions, store, get_runner, owner="test-worker", lease_s=3, poll_s=0.1)


def _submit(sessions: sessionmaker[Session], **input: JsonValue) -> uuid.UUID:
    with sessions() as session, session.begin():
        body = submission.Submission("stub-test", {"prompt": "a red fox", **input})
        return submission.submit(session, body, owner="tester", max_attempts=3).job_id


def _job(
    sessions: sessionmaker[Session], job_id: uuid.UUID
) -> tuple[Job, list[Step], list[Artifact]]:
    with sessions() as session:
        job = session.get_one(Job, job_id)
        steps = list(
            session.scalars(select(Step).where(Step.job_id == job_id).order_by(Step.position))
        )
        artifacts = list(session.scalars(select(Artifact).where(Artifact.job_id == job_id)))
        return job, steps, artifacts


def _types(sessions: sessionmaker[Session], job_id: uuid.UUID) -> list[str]:
    with sessions() as session:
        return [event.type for event in events.page(session, job_id, 0, 1000)]


def test_a_job_runs_its_steps_and_stores_its_artifacts(
    sessions: sessionmaker[Session], model: Model, executor: Executor, store: S3ArtifactStore
) -> None:
    job_id = _submit(sessions)
    claimed = executor.claim_next()
    assert claimed is not None
    assert claimed.claim.job_id == job_id
    assert executor.run(claimed).outcome == Outcome.SUCCEEDED

    job, steps, artifacts = _job(sessions, job_id)
    assert (job.status, job.attempts, job.lease_owner, job.error) == ("succeeded", 1, None, None)
    assert [(s.name, s.status, s.attempts) for s in steps] == [
        ("prepare", "succeeded", 1),
        ("render", "succeeded", 1),
        ("describe", "succeeded", 1),
    ]
    for artifact in artifacts:
        body = store.client.get_object(Bucket=BUCKET, Key=artifact.key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == artifact.sha256
        assert artifact.key.startswith(f"jobs/{job_id}/")
    assert sorted(a.name for a in artifacts) == ["image.png", "manifest.json"]
    progress = ["step.progress"] * 3
    finish = ["step.log", "step.progress", "step.succeeded"]
    assert _types(sessions, job_id) == [
        *["job.queued", "job.started"],
        *["step.started", *progress, *finish],
        *["step.started", *progress, "artifact.stored", *finish],
        *["step.started", *progress, "artifact.stored", *finish],
        "job.succeeded",
    ]
    with sessions() as session:  # no error is SQL NULL, not the JSON value null
        assert (
            session.scalar(
                text("SELECT count(*) FROM steps WHERE job_id = :id AND error IS NULL"),
                {"id": job_id},
            )
            == 3
        )
        assert session.scalar(text("SELECT error IS NULL FROM jobs WHERE id = :id"), {"id": job_id})


def test_a_job_commits_a_transaction_per_step_not_per_event_or_artifact(
    engine: Engine, sessions: sessionmaker[Session], model: Model, store: S3ArtifactStore
) -> None:
    """Progress and log events and artifacts' records go out with the step's end; the claim
    plans and starts the first step; a step's end and the next one's start share a transaction,
    and so do the last step's and the job's end."""
    # A lease keeper that never ticks during the job: only the executor's own transactions.
    executor = Executor(sessions, store, get_runner, owner="test-worker", lease_s=90, poll_s=30)
    _submit(sessions)
    commits: list[object] = []

    def count(connection: object) -> None:
        commits.append(connection)

    listen(engine, "commit", count)
    try:
        claimed = executor.claim_next()
        assert claimed is not None
        assert executor.run(claimed).outcome == Outcome.SUCCEEDED
    finally:
        remove(engine, "commit", count)
    # claim + plan + start 1; end 1 + start 2; end 2 (its artifact) + start 3; end 3 (its
    # artifact) + the job.
    assert len(commits) == 4


def test_progress_reported_during_a_long_step_is_visible_before_the_step_ends(
    sessions: sessionmaker[Session], model: Model, executor: Executor
) -> None:
    job_id = _submit(sessions, step_duration_s=2)
    claimed = executor.claim_next()
    assert claimed is not None
    runner = threading.Thread(target=executor.run, args=(claimed,))
    runner.start()
    try:
        # The lease keeper writes pending progress every poll_s (0.1 s here).
        deadline = time.monotonic() + 10
        while "step.progress" not in (types := _types(sessions, job_id)):
            assert time.monotonic() < deadline, types
            time.sleep(0.05)
        assert "step.succeeded" not in types
    finally:
        runner.join()


def test_the_lease_is_renewed_a_third_of_it_after_the_claim_began_however_long_it_took(
    sessions: sessionmaker[Session], model: Model, store: S3ArtifactStore
) -> None:
    """The database counts the lease from within the claim's transaction: a claim that took a
    while (a stalled database) must not push the first renewal past the lease's end."""
    executor = Executor(sessions, store, get_runner, owner="test-worker", lease_s=6, poll_s=0.05)
    job_id = _submit(sessions, step_duration_s=1)
    claimed = executor.claim_next()
    assert claimed is not None
    # As if the claim's transaction had taken 2.5 s: a third of the lease has passed.
    slow = dataclasses.replace(claimed, leased_at=claimed.leased_at - 2.5)
    claimed_until = _job(sessions, job_id)[0].lease_expires_at
    assert claimed_until is not None
    outcome: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcome.append(executor.run(slow).outcome))
    runner.start()
    try:
        while (lease := _job(sessions, job_id)[0].lease_expires_at) == claimed_until:
            assert "step.succeeded" not in _types(sessions, job_id), "not renewed in step 1"
            time.sleep(0.02)
        assert lease is not None  # renewed, not ended
        assert lease > claimed_until
    finally:
        runner.join()
    assert outcome == [Outcome.SUCCEEDED]


def test_a_running_job_is_canceled_by_its_worker(
    sessions: sessionmaker[Session], model: Model, executor: Executor
) -> None:
    job_id = _submit(sessions, step_duration_s=30)
    claimed = executor.claim_next()
    assert claimed is not None

    def cancel_when_running() -> None:
        while _job(sessions, job_id)[1] == [] or _job(sessions, job_id)[1][0].status != "running":
            time.sleep(0.05)
        with sessions() as session, session.begin():
            cancel.cancel(session, job_id, owner="tester")

    canceler = threading.Thread(target=cancel_when_running)
    canceler.start()
    finished = executor.run(claimed)
    canceler.join()
    assert finished.outcome == Outcome.CANCELED
    job, steps, _ = _job(sessions, job_id)
    assert job.status == JobStatus.CANCELED
    assert job.lease_owner is None
    assert [s.status for s in steps] == [StepStatus.CANCELED] * 3
    assert _types(sessions, job_id)[-3:] == ["job.canceling", "step.canceled", "job.canceled"]


def test_a_failing_step_fails_the_job_with_its_error(
    sessions: sessionmaker[Session], model: Model, executor: Executor
) -> None:
    job_id = _submit(sessions, fail_at_step=1)
    claimed = executor.claim_next()
    assert claimed is not None
    assert executor.run(claimed).outcome == Outcome.FAILED
    job, steps, _ = _job(sessions, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None
    assert (job.error["type"], job.error["step"]) == ("step_failed", "render")
    assert [s.status for s in steps] == ["succeeded", "failed", "canceled"]


def test_a_job_taken_back_from_a_stalled_worker_resumes_at_its_first_unfinished_step(
    sessions: sessionmaker[Session], model: Model, executor: Executor, store: S3ArtifactStore
) -> None:
    job_id = _submit(sessions, step_duration_s=1)
    stalled = executor.claim_next()
    assert stalled is not None
    outcome: list[Outcome] = []
    first = threading.Thread(target=lambda: outcome.append(executor.run(stalled).outcome))
    first.start()
    while _job(sessions, job_id)[1] == [] or _job(sessions, job_id)[1][0].status != "succeeded":
        time.sleep(0.05)
    # The reconciler takes the job back as if the worker's lease had run out.
    with sessions() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="queued", lease_owner=None, lease_expires_at=None)
        )
    first.join()
    assert outcome == [Outcome.LOST]

    other = Executor(sessions, store, get_runner, owner="other", lease_s=3, poll_s=0.1)
    claimed = other.claim_next()
    assert claimed is not None
    assert claimed.claim.attempt == 2
    assert other.run(claimed).outcome == Outcome.SUCCEEDED
    job, steps, artifacts = _job(sessions, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert steps[0].attempts == 1  # not run again
    assert sorted(a.name for a in artifacts) == ["image.png", "manifest.json"]  # not duplicated


def test_a_storage_outage_gives_the_job_back_for_another_attempt(
    sessions: sessionmaker[Session], model: Model
) -> None:
    dead = make_s3_client(Settings(s3_endpoint_url=AnyHttpUrl("http://127.0.0.1:9")), timeout_s=1)
    executor = Executor(sessions, S3ArtifactStore(dead, BUCKET), get_runner, owner="w", lease_s=3)
    job_id = _submit(sessions)
    claimed = executor.claim_next()
    assert claimed is not None
    assert executor.run(claimed).outcome == Outcome.RELEASED
    job, steps, _ = _job(sessions, job_id)
    assert (job.status, job.attempts, job.lease_owner) == (JobStatus.QUEUED, 1, None)
    assert steps[1].status == StepStatus.FAILED
    assert steps[1].error is not None
    assert _types(sessions, job_id)[-1] == "job.requeued"


def test_nothing_queued_means_nothing_claimed(
    sessions: sessionmaker[Session], model: Model, executor: Executor
) -> None:
    assert executor.claim_next() is None


def test_a_job_running_at_shutdown_goes_back_to_the_queue_at_once(
    sessions: sessionmaker[Session], model: Model, store: S3ArtifactStore
) -> None:
    """The worker's grace period is over: the running step stops, and the job is queued again
    for another worker instead of waiting out its lease."""
    shutdown = threading.Event()
    executor = Executor(
        sessions, store, get_runner, owner="test-worker", lease_s=30, poll_s=0.1, shutdown=shutdown
    )
    job_id = _submit(sessions, step_duration_s=2)
    claimed = executor.claim_next()
    assert claimed is not None
    threading.Timer(0.5, shutdown.set).start()
    started = time.monotonic()
    assert executor.run(claimed).outcome == Outcome.RELEASED
    assert time.monotonic() - started < 1.5

    job, steps, _ = _job(sessions, job_id)
    # Nothing failed: the attempt is given back (max_attempts + 1, attempts is the fence).
    assert (job.status, job.attempts, job.max_attempts, job.lease_owner) == ("queued", 1, 4, None)
    assert [(s.name, s.status) for s in steps] == [
        ("prepare", "canceled"),
        ("render", "queued"),
        ("describe", "queued"),
    ]
    assert _types(sessions, job_id)[-2:] == ["step.canceled", "job.requeued"]


class _UnplannableRunner:
    def plan(self, input: Mapping[str, Any]) -> Sequence[str]:
        raise RuntimeError("no plan for this input")

    def run_step(self, step: str, input: Mapping[str, Any], context: StepContext) -> None:
        raise AssertionError("a job without a plan runs no step")


def test_a_runner_that_cannot_plan_gives_the_job_back_with_the_attempt_used(
    sessions: sessionmaker[Session], model: Model, store: S3ArtifactStore
) -> None:
    """Planning happens in the claim's transaction: its failure must not undo the claim (the
    attempt counts, so a job that can never be planned ends attempts_exhausted)."""
    runner = _UnplannableRunner()
    executor = Executor(sessions, store, lambda name: runner, owner="w", lease_s=3, poll_s=0.1)
    job_id = _submit(sessions)
    claimed = executor.claim_next()
    assert claimed is not None
    assert isinstance(claimed.planning_error, RuntimeError)
    assert executor.run(claimed).outcome == Outcome.RELEASED
    job, steps, _ = _job(sessions, job_id)
    assert (job.status, job.attempts, job.lease_owner, steps) == (JobStatus.QUEUED, 1, None, [])
    assert _types(sessions, job_id) == ["job.queued", "job.started", "job.requeued"]
