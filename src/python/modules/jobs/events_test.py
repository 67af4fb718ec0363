import threading
import uuid

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from modules.jobs import events, submission
from modules.persistence.models import Job, Model, Step

WRITERS = 8
EVENTS_PER_WRITER = 25


def _job(sessions: sessionmaker[Session], model: Model) -> uuid.UUID:
    with sessions() as session, session.begin():
        wanted = submission.Submission(f"{model.name}@{model.version}", {"prompt": "x"})
        return submission.submit(session, wanted, owner="tester", max_attempts=3).job_id


def test_concurrent_writers_make_a_gapless_stream_a_reader_never_sees_out_of_order(
    sessions: sessionmaker[Session], model: Model
) -> None:
    job_id = _job(sessions, model)
    start = threading.Barrier(WRITERS + 2)  # the writers, the reader and this thread
    failures: list[BaseException] = []
    # What a reader resuming after the last seq it saw collects while the writers run.
    seen: list[int] = []
    done = threading.Event()

    def write(writer: int) -> None:
        try:
            start.wait()
            for i in range(EVENTS_PER_WRITER):
                with sessions() as session, session.begin():
                    events.append(session, job_id, events.NewEvent("test", {"w": writer, "i": i}))
        except BaseException as error:
            failures.append(error)

    def read() -> None:
        start.wait()
        while True:
            finished = done.is_set()
            with sessions() as session:
                page = events.page(session, job_id, seen[-1] if seen else 0, 50)
            seen.extend(event.seq for event in page)
            if finished and not page:
                return

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    reader = threading.Thread(target=read)
    for thread in [*threads, reader]:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()

    assert failures == []
    total = 1 + WRITERS * EVENTS_PER_WRITER  # job.queued first
    assert seen == list(range(1, total + 1))  # nothing missed, nothing twice, in order
    with sessions() as session:
        stored = events.page(session, job_id, 0, total + 10)
    assert [event.seq for event in stored] == list(range(1, total + 1))
    # Each writer's events keep the order it wrote them in.
    for writer in range(WRITERS):
        mine = [e.payload["i"] for e in stored if e.payload.get("w") == writer]
        assert mine == list(range(EVENTS_PER_WRITER))


def test_a_rolled_back_append_leaves_no_gap(sessions: sessionmaker[Session], model: Model) -> None:
    job_id = _job(sessions, model)
    with sessions() as session:
        assert events.append(session, job_id, events.NewEvent("lost", {})) == [2]
        session.rollback()
    with sessions() as session, session.begin():
        assert events.append(session, job_id, events.NewEvent("kept", {})) == [2]


def test_a_batch_takes_consecutive_seqs_in_its_order(
    sessions: sessionmaker[Session], model: Model
) -> None:
    job_id = _job(sessions, model)  # job.queued is seq 1
    with sessions() as session, session.begin():
        step_id = session.scalar(
            insert(Step).values(job_id=job_id, position=0, name="only").returning(Step.id)
        )
        batch = [
            events.NewEvent("first", {"n": 1, "nested": {"list": [1, "two", None]}}),
            events.NewEvent("second", {"text": 'ünïcode \\ "quoted"'}, step_id),
            events.NewEvent("third", {}),
        ]
        assert events.append(session, job_id, *batch) == [2, 3, 4]
    with sessions() as session:
        stored = events.page(session, job_id, 1, 10)
        assert [(e.seq, e.type, e.payload, e.step_id) for e in stored] == [
            (2, "first", batch[0].payload, None),
            (3, "second", batch[1].payload, step_id),
            (4, "third", {}, None),
        ]
        assert session.get_one(Job, job_id).last_event_seq == 4
