"""Claims, leases, cancel and the reconciler against PostgreSQL and Redis."""

import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from modules.jobs import cancel, claims, events, reads, submission
from modules.jobs.reconcile import LEASE_EXPIRED, reconcile
from modules.persistence.models import Job, Model
from modules.persistence.statuses import JobStatus
from modules.testing.isolation import execution_slot
from modules.workqueue import TokenQueue, make_celery


def _submit(sessions: sessionmaker[Session], priority: int = 0, max_attempts: int = 3) -> uuid.UUID:
    with sessions() as session, session.begin():
        body = submission.Submission("stub-test", {"prompt": "x"}, priority=priority)
        return submission.submit(session, body, owner="tester", max_attempts=max_attempts).job_id


def _claim(
    sessions: sessionmaker[Session], owner: str = "w1", lease_s: float = 30
) -> claims.Claim | None:
    with sessions() as session, session.begin():
        return claims.claim_next(session, owner, lease_s)


def _status(sessions: sessionmaker[Session], job_id: uuid.UUID) -> JobStatus:
    with sessions() as session:
        return session.get_one(Job, job_id).status


def _expire(sessions: sessionmaker[Session], job_id: uuid.UUID) -> None:
    with sessions() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=text("now() - interval '1 s'"))
        )


@pytest.fixture()
def queue(redis_base_url: str) -> Iterator[TokenQueue]:
    """Forge's queue on a Redis database private to this test process."""
    url = f"{redis_base_url}/{8 + execution_slot() % 8}"
    redis.Redis.from_url(url).flushdb()
    app = make_celery("test", url)
    yield TokenQueue(app)
    app.close()


def test_claims_take_the_highest_priority_then_the_oldest(
    sessions: sessionmaker[Session], model: Model
) -> None:
    low, high, low_later = _submit(sessions), _submit(sessions, priority=5), _submit(sessions)
    taken = [_claim(sessions) for _ in range(4)]
    assert [c.job_id if c else None for c in taken] == [high, low, low_later, None]
    first = taken[0]
    assert first is not None
    assert (first.attempt, first.runner, first.model) == (
        1,
        "stub",
        "stub-test@1",
    )


def test_concurrent_claims_never_take_the_same_job(
    sessions: sessionmaker[Session], model: Model
) -> None:
    jobs = {_submit(sessions) for _ in range(10)}
    start = threading.Barrier(10)
    taken: list[uuid.UUID] = []

    def claim() -> None:
        start.wait()
        while (got := _claim(sessions, owner=threading.current_thread().name)) is not None:
            taken.append(got.job_id)

    threads = [threading.Thread(target=claim) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(jobs)


def test_cancel_queued_at_once_running_through_its_worker_terminal_unchanged(
    sessions: sessionmaker[Session], model: Model
) -> None:
    queued, running = _submit(sessions), _submit(sessions)
    ended = cancel.Cancellation(JobStatus.CANCELED, ended=True)
    # Only the request that ended the job says so; a running job's worker ends it.
    canceling = cancel.Cancellation(JobStatus.CANCELING, ended=False)
    with sessions() as session, session.begin():
        assert cancel.cancel(session, queued, owner="tester") == ended
    claim = _claim(sessions)
    assert claim is not None
    assert claim.job_id == running  # the canceled job is never claimed
    with sessions() as session, session.begin():
        assert cancel.cancel(session, running, owner="tester") == canceling
        assert cancel.cancel(session, running, owner="tester") == canceling  # idempotent
        assert cancel.cancel(session, queued, owner="tester") == cancel.Cancellation(
            JobStatus.CANCELED, ended=False
        )
        assert cancel.cancel(session, uuid.uuid4(), owner="tester") is None
        assert claims.hold(session, claim) == JobStatus.CANCELING
        assert claims.finish(session, claim, JobStatus.CANCELED)
    with sessions() as session:
        types = [e.type for e in events.page(session, running, 0, 10)]
    assert types == ["job.queued", "job.started", "job.canceling", "job.canceled"]


def test_a_holder_whose_lease_was_taken_back_can_no_longer_write(
    sessions: sessionmaker[Session], model: Model, queue: TokenQueue
) -> None:
    job_id = _submit(sessions)
    stale = _claim(sessions, owner="stalled")
    assert stale is not None
    _expire(sessions, job_id)
    result = reconcile(sessions, queue)
    assert result.taken_back == {JobStatus.QUEUED: 1}
    assert result.ended == []  # queued again, not ended
    fresh = _claim(sessions, owner="fresh")
    assert fresh is not None
    assert (fresh.job_id, fresh.attempt) == (job_id, 2)
    with sessions() as session, session.begin():
        assert claims.hold(session, stale) is None
        assert claims.renew(session, stale, 30) is None
        assert not claims.finish(session, stale, JobStatus.SUCCEEDED)
        assert claims.finish(session, fresh, JobStatus.SUCCEEDED)
    assert _status(sessions, job_id) == JobStatus.SUCCEEDED


def test_a_job_that_keeps_losing_its_worker_fails_after_its_attempts(
    sessions: sessionmaker[Session], model: Model, queue: TokenQueue
) -> None:
    job_id = _submit(sessions, max_attempts=2)
    passes = []
    for _ in range(2):
        assert _claim(sessions) is not None
        _expire(sessions, job_id)
        passes.append(reconcile(sessions, queue))
    assert passes[0].ended == []
    (ended,) = passes[1].ended
    assert (ended.model, ended.status) == ("stub-test@1", JobStatus.FAILED)
    with sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
        assert job.finished_at is not None
        assert ended.seconds == (job.finished_at - job.created_at).total_seconds()
        assert job.error == {
            "type": "attempts_exhausted",
            "message": f"gave up after 2 attempts; the last ended with: {LEASE_EXPIRED}",
        }
    assert _claim(sessions) is None


def test_a_canceling_job_whose_worker_died_ends_canceled(
    sessions: sessionmaker[Session], model: Model, queue: TokenQueue
) -> None:
    job_id = _submit(sessions)
    assert _claim(sessions) is not None
    with sessions() as session, session.begin():
        cancel.cancel(session, job_id, owner="tester")
    _expire(sessions, job_id)
    result = reconcile(sessions, queue)
    assert result.taken_back == {JobStatus.CANCELED: 1}
    assert [(ended.model, ended.status) for ended in result.ended] == [
        ("stub-test@1", JobStatus.CANCELED)
    ]


def test_the_reconciler_sends_one_message_per_queued_job_without_one(
    sessions: sessionmaker[Session], model: Model, queue: TokenQueue
) -> None:
    for _ in range(3):
        _submit(sessions)
    queue.send(1)  # one job's message survived; Redis lost the others
    result = reconcile(sessions, queue)
    assert (result.acted, result.sent, result.queued) == (True, 2, {"stub-test@1": 3})
    assert queue.waiting() == 3
    assert reconcile(sessions, queue).sent == 0  # nothing more while they wait


def test_one_reconciler_acts_at_a_time(
    sessions: sessionmaker[Session], model: Model, queue: TokenQueue
) -> None:
    with sessions() as holder, holder.begin():
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 0x666F726765})
        assert not reconcile(sessions, queue).acted
    assert reconcile(sessions, queue).acted


def test_listing_pages_skip_and_repeat_nothing_while_jobs_arrive(
    sessions: sessionmaker[Session], model: Model
) -> None:
    existing = [_submit(sessions) for _ in range(25)]
    seen: list[uuid.UUID] = []
    cursor = None
    pages = 0
    while True:
        with sessions() as session:
            page = reads.list_jobs(session, owner="tester", limit=10, cursor=cursor)
        seen.extend(view.job.id for view in page.jobs)
        pages += 1
        _submit(sessions)  # arrives at the top, before where we are
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == list(reversed(existing))


def test_listing_filters_and_refuses_a_forged_cursor(
    sessions: sessionmaker[Session], model: Model
) -> None:
    job_id = _submit(sessions)
    _submit(sessions)
    with sessions() as session, session.begin():
        cancel.cancel(session, job_id, owner="tester")
    with sessions() as session:
        canceled = reads.list_jobs(session, owner="tester", limit=10, status=JobStatus.CANCELED)
        assert [view.job.id for view in canceled.jobs] == [job_id]
        assert (
            len(reads.list_jobs(session, owner="tester", limit=10, model="stub-test@1").jobs) == 2
        )
        assert reads.list_jobs(session, owner="tester", limit=10, model="other").jobs == []
        with pytest.raises(reads.InvalidCursor):
            reads.list_jobs(session, owner="tester", limit=10, cursor="bm90IGEgY3Vyc29y")
