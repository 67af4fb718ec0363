import threading
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from modules.jobs import cancel, events, submission
from modules.jobs.models import ModelCache, ModelNotFound, resolve
from modules.persistence.models import Job, Model


def _submit(
    sessions: sessionmaker[Session],
    body: submission.Submission,
    owner: str = "tester",
    max_queued: int | None = None,
) -> submission.Accepted:
    with sessions() as session, session.begin():
        return submission.submit(session, body, owner=owner, max_attempts=3, max_queued=max_queued)


def test_a_job_is_queued_with_its_defaults_and_one_event(
    sessions: sessionmaker[Session], model: Model
) -> None:
    accepted = _submit(sessions, submission.Submission("stub-test", {"prompt": "fox"}))
    assert not accepted.replayed
    with sessions() as session:
        job = session.get_one(Job, accepted.job_id)
        assert (job.status, job.attempts, job.max_attempts) == ("queued", 0, 3)
        assert job.input == {"prompt": "fox", "seed": 1, "width": 32, "height": 32}
        page = events.page(session, job.id, 0, 10)
        assert [(e.seq, e.type) for e in page] == [(1, "job.queued")]


def test_every_input_error_is_reported_with_its_pointer(
    sessions: sessionmaker[Session], model: Model
) -> None:
    with pytest.raises(submission.InvalidInput) as raised:
        _submit(sessions, submission.Submission("stub-test@1", {"seed": -1, "colour": "red"}))
    pointers = sorted(error.pointer for error in raised.value.errors)
    assert pointers == ["/input", "/input", "/input/seed"]  # required prompt, extra colour, seed
    messages = " ".join(error.message for error in raised.value.errors)
    assert "'prompt' is a required property" in messages
    assert "colour" in messages


@pytest.mark.parametrize("reference", ["nope", "stub-test@2"])
def test_an_unknown_model_or_version_is_refused(
    sessions: sessionmaker[Session], model: Model, reference: str
) -> None:
    with pytest.raises(ModelNotFound):
        _submit(sessions, submission.Submission(reference, {"prompt": "x"}))


def test_a_replay_returns_the_original_and_another_body_conflicts(
    sessions: sessionmaker[Session], model: Model
) -> None:
    first = _submit(sessions, submission.Submission("stub-test", {"prompt": "a"}, "key-1"))
    again = _submit(sessions, submission.Submission("stub-test", {"prompt": "a"}, "key-1"))
    assert again == submission.Accepted(first.job_id, replayed=True)
    with pytest.raises(submission.IdempotencyConflict):
        _submit(sessions, submission.Submission("stub-test", {"prompt": "b"}, "key-1"))


def test_an_idempotency_key_is_scoped_to_its_owner(
    sessions: sessionmaker[Session], model: Model
) -> None:
    body = submission.Submission("stub-test", {"prompt": "a"}, "shared-key")
    mine, theirs = _submit(sessions, body, "alice"), _submit(sessions, body, "bob")
    assert mine.job_id != theirs.job_id
    assert not mine.replayed
    assert not theirs.replayed
    assert _submit(sessions, body, "bob") == submission.Accepted(theirs.job_id, replayed=True)
    with sessions() as session:
        owners = session.scalars(select(Job.owner).order_by(Job.owner)).all()
    assert owners == ["alice", "bob"]


def test_the_queue_cap_counts_the_owners_queued_jobs_and_still_answers_replays(
    sessions: sessionmaker[Session], model: Model
) -> None:
    first = submission.Submission("stub-test", {"prompt": "1"}, "first")
    accepted = _submit(sessions, first, max_queued=2)
    _submit(sessions, submission.Submission("stub-test", {"prompt": "2"}), max_queued=2)
    with pytest.raises(submission.QueueFull):
        _submit(sessions, submission.Submission("stub-test", {"prompt": "3"}), max_queued=2)
    assert _submit(sessions, first, max_queued=2) == submission.Accepted(
        accepted.job_id, replayed=True
    )
    with pytest.raises(submission.IdempotencyConflict):
        _submit(
            sessions, submission.Submission("stub-test", {"prompt": "x"}, "first"), max_queued=2
        )
    # Another owner's queue is its own; a job that left the queue frees a place.
    _submit(sessions, submission.Submission("stub-test", {"prompt": "3"}), "bob", max_queued=2)
    with sessions() as session, session.begin():
        cancel.cancel(session, accepted.job_id, owner="tester")
    _submit(sessions, submission.Submission("stub-test", {"prompt": "3"}), max_queued=2)


def test_twenty_concurrent_duplicates_create_one_job(
    sessions: sessionmaker[Session], model: Model
) -> None:
    body = submission.Submission("stub-test", {"prompt": "same"}, "key-" + uuid.uuid4().hex)
    start = threading.Barrier(20)
    results: list[submission.Accepted] = []

    def send() -> None:
        start.wait()
        results.append(_submit(sessions, body))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert len({r.job_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_a_name_without_version_means_its_newest_version(
    sessions: sessionmaker[Session], model: Model
) -> None:
    with sessions() as session, session.begin():
        for version in ("2", "10", "9"):  # published together, as one catalog sync does
            session.add(
                Model(
                    name=model.name,
                    version=version,
                    task=model.task,
                    runner=model.runner,
                    input_schema=model.input_schema,
                )
            )
    with sessions() as session:
        assert resolve(session, "stub-test").version == "10"
        assert resolve(session, "stub-test@9").version == "9"


def test_the_model_cache_reads_a_version_once_and_a_bare_name_every_time(
    sessions: sessionmaker[Session], model: Model
) -> None:
    cache = ModelCache()
    with sessions() as session:
        pinned = cache.resolve(session, "stub-test@1")
        session.rollback()  # expires what the session holds; the remembered model is not in it
    with sessions() as session:
        assert cache.resolve(session, "stub-test@1") is pinned
        assert (pinned.name, pinned.version, pinned.default_parameters["seed"]) == (
            "stub-test",
            "1",
            1,
        )
        assert cache.resolve(session, "stub-test").version == "1"
        session.add(
            Model(
                name=model.name,
                version="2",
                task=model.task,
                runner=model.runner,
                input_schema=model.input_schema,
            )
        )
        session.commit()
        assert cache.resolve(session, "stub-test").version == "2"  # the newest, read again
    with sessions() as session, session.begin():
        wanted = submission.Submission("stub-test@1", {"prompt": "fox"})
        accepted = submission.submit(
            session, wanted, owner="tester", max_attempts=3, resolve=cache.resolve
        )
    assert accepted.created is not None
    assert (accepted.created.model.version, accepted.created.job.model_id) == ("1", model.id)
