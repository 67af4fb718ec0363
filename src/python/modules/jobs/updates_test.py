import uuid

from sqlalchemy.orm import Session, sessionmaker

from modules.jobs import events, submission, updates
from modules.persistence.models import Model
from modules.persistence.statuses import JobStatus


def test_read_after_gives_the_status_and_the_page_after_the_cursor_in_order(
    sessions: sessionmaker[Session], model: Model
) -> None:
    with sessions() as session, session.begin():
        wanted = submission.Submission(f"{model.name}@{model.version}", {"prompt": "x"})
        job_id = submission.submit(session, wanted, owner="tester", max_attempts=3).job_id
        logs = [events.NewEvent("step.log", {"message": str(n)}) for n in range(4)]
        events.append(session, job_id, *logs)  # seqs 2 to 5, after job.queued

    with sessions() as session:
        first = updates.read_after(session, job_id, 0, 3)
        rest = updates.read_after(session, job_id, 3, 100)
        none_after = updates.read_after(session, job_id, 5, 100)
        unknown = updates.read_after(session, uuid.uuid4(), 0, 100)

    assert first is not None
    assert rest is not None
    assert none_after is not None
    assert first.status == JobStatus.QUEUED
    assert [(e.seq, e.type) for e in first.events] == [
        (1, "job.queued"),
        (2, "step.log"),
        (3, "step.log"),
    ]
    assert [e.payload for e in rest.events] == [{"message": "2"}, {"message": "3"}]
    assert none_after.status == JobStatus.QUEUED
    assert none_after.events == []
    assert unknown is None
