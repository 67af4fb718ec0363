"""Accepting a job: validate its input, insert it once however often it is sent."""

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from modules.jobs import models
from modules.jobs.reads import JobView
from modules.persistence.base import JsonObject
from modules.persistence.models import Job, Model
from modules.persistence.statuses import JobStatus


@dataclass(frozen=True)
class Submission:
    model: str  # "name" or "name@version"
    input: JsonObject
    idempotency_key: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class InputError:
    pointer: str  # JSON pointer into the request body, e.g. "/input/seed"
    message: str


class InvalidInput(Exception):
    def __init__(self, errors: list[InputError]) -> None:
        super().__init__("; ".join(f"{error.pointer}: {error.message}" for error in errors))
        self.errors = errors


class IdempotencyConflict(Exception):
    """The key was used before with another request body."""


class QueueFull(Exception):
    """The owner has as many queued jobs as it may have."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} jobs queued already")
        self.limit = limit


@dataclass(frozen=True)
class Accepted:
    job_id: uuid.UUID
    replayed: bool  # True: the key was seen with the same body, this is the original job
    # The job as inserted (queued, no steps or artifacts yet); None for a replay, whose job
    # may have run since.
    created: JobView | None = None


def submit(
    session: Session,
    submission: Submission,
    *,
    owner: str,
    max_attempts: int,
    max_queued: int | None = None,
    resolve: Callable[[Session, str], Model] = models.resolve,
) -> Accepted:
    """Insert `owner`'s job (status queued, event job.queued) unless the owner used its
    idempotency key before; QueueFull when the owner has `max_queued` jobs queued (a replay is
    still answered).

    Concurrent requests with one key are decided by the unique index: one insert wins, the others
    wait for its commit and then find its row. The cap is counted, not locked: concurrent
    submissions of one owner may overshoot it by as many as are in flight. `resolve` finds the
    model a reference names (a caller may remember published versions: models.ModelCache)."""
    model = resolve(session, submission.model)
    effective = {**model.default_parameters, **submission.input}
    validator = Draft202012Validator(model.input_schema)
    errors = sorted(validator.iter_errors(effective), key=lambda error: list(error.absolute_path))
    if errors:
        raise InvalidInput(
            [InputError(_pointer(error.absolute_path), error.message) for error in errors]
        )

    request_hash = None
    if submission.idempotency_key is not None:
        request_hash = _request_hash(submission)
    values = {
        "model_id": model.id,
        "owner": owner,
        "input": effective,
        "idempotency_key": submission.idempotency_key,
        "request_hash": request_hash,
        "priority": submission.priority,
        "max_attempts": max_attempts,
        "max_queued": max_queued,
    }
    job = session.scalars(select(Job).from_statement(_INSERT), values).one_or_none()
    if job is not None:
        return Accepted(job.id, replayed=False, created=JobView(job, model, [], []))
    # Not inserted: the key was used before (a replay wins over a full queue), or the queue is
    # full.
    replay = _original(session, owner, submission.idempotency_key, request_hash)
    if replay is not None:
        return replay
    assert max_queued is not None  # without a cap, only a used key keeps a job out
    raise QueueFull(max_queued)


# The job and its first event (job.queued, seq 1) in one statement; nothing when the owner used
# the idempotency key before or has :max_queued jobs queued (NULL: no cap), counted no further
# than the cap, so a long queue costs no more than a full one. SQL rather than a construct built
# per call: this is every submission's statement (ADRs 015, 017).
_INSERT = text("""
    WITH job AS (
        INSERT INTO jobs (model_id, owner, input, idempotency_key, request_hash, priority,
                          max_attempts, last_event_seq)
        SELECT :model_id, :owner, :input, :idempotency_key, :request_hash, :priority,
               :max_attempts, 1
        WHERE CAST(:max_queued AS integer) IS NULL OR (
            SELECT count(*) FROM (
                SELECT FROM jobs WHERE owner = :owner AND status = 'queued'
                LIMIT CAST(:max_queued AS integer)
            ) AS queued
        ) < CAST(:max_queued AS integer)
        ON CONFLICT (owner, idempotency_key) DO NOTHING
        RETURNING *
    ), queued AS (
        INSERT INTO events (job_id, seq, type, payload)
        SELECT id, 1, 'job.queued', :event FROM job
    )
    SELECT * FROM job
    """).bindparams(
    bindparam("input", type_=JSONB),
    bindparam("event", {"status": JobStatus.QUEUED.value}, type_=JSONB),
)


def _original(
    session: Session, owner: str, key: str | None, request_hash: str | None
) -> Accepted | None:
    """The owner's job submitted earlier with this key; IdempotencyConflict if its body was
    another."""
    if key is None:
        return None
    original = session.execute(
        select(Job.id, Job.request_hash).where(Job.owner == owner, Job.idempotency_key == key)
    ).one_or_none()
    if original is None:
        return None
    if original.request_hash != request_hash:
        raise IdempotencyConflict(key)
    return Accepted(original.id, replayed=True)


def _request_hash(submission: Submission) -> str:
    body = {"model": submission.model, "input": submission.input, "priority": submission.priority}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _pointer(path: Iterable[str | int]) -> str:
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in path]
    return "/".join(["/input", *parts])
