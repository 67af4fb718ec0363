"""Running one claimed job with its runner: the worker's whole job, with no Celery in it.

While the job runs, a lease keeper thread renews the lease every lease/3 and looks for a cancel
request every `poll_s`. The runner sees a cancel through its context (raise_if_canceled, sleep),
and so does a holder that lost its job, which then writes nothing more.

The claim's transaction also plans the job's steps and starts the first. Every later write of
the holder goes through the job's journal, one transaction at a time, each starting with the
fence (claims.hold). A step's end and the next step's start share one transaction, and so do the
last step's end and the job's. Progress and log events and stored artifacts' records are not
worth a commit each: they wait in the journal and go out with the next write, at the latest with
the keeper's next tick (`poll_s`), in the order they were reported (ADRs 014, 015).
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from modules.jobs import artifacts, claims, events, steps
from modules.jobs.claims import Claim
from modules.jobs.steps import PlannedStep
from modules.persistence.base import JsonObject
from modules.persistence.models import Job
from modules.persistence.statuses import JobStatus, StepStatus
from modules.runners.base import Runner, StepCanceled, StepFailed

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    RELEASED = "released"  # given back for another attempt after an error
    LOST = "lost"  # the claim no longer holds the job; the reconciler or another worker has it


@dataclass(frozen=True)
class Finished:
    claim: Claim
    outcome: Outcome
    seconds: float


class StoredObject(Protocol):
    @property
    def bucket(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def sha256(self) -> str: ...


class ArtifactStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> StoredObject: ...


class ShutdownFlag(Protocol):
    """Set once the worker's process must give its job back (threading or multiprocessing
    Event: the worker's main process sets it for its pool processes)."""

    def is_set(self) -> bool: ...


class _NeverSet:
    def is_set(self) -> bool:
        return False


_NEVER = _NeverSet()


SHUT_DOWN = "the worker shut down before the job finished"


@dataclass(frozen=True)
class Started:
    """A job claimed by this worker, its steps planned and the first of `todo` started, in the
    claim's transaction. `planning_error`: the runner could not plan the job, which run() then
    ends as it ends a failed step (the claim is committed, so the attempt counts)."""

    claim: Claim
    todo: Sequence[PlannedStep]  # the steps an earlier attempt did not finish, in order
    # time.monotonic() before the claim's transaction began: its lease runs from no earlier,
    # however long the transaction took.
    leased_at: float
    planning_error: Exception | None = None


class _Lost(Exception):
    """The claim no longer holds the job: its holder must write nothing more."""


class _Journal:
    """The holder's writes to its job, one transaction at a time (the lease keeper writes too),
    and the runner's events and stored artifacts waiting for the next one."""

    def __init__(self, sessions: Callable[[], Session], claim: Claim) -> None:
        self._sessions = sessions
        self.claim = claim
        self._writing = threading.Lock()  # one transaction at a time, so seqs follow this order
        self._pending_lock = threading.Lock()
        self._pending: list[events.NewEvent] = []
        self._pending_artifacts: list[tuple[uuid.UUID, artifacts.StoredArtifact]] = []

    def add(
        self,
        event: events.NewEvent,
        artifact: tuple[uuid.UUID, artifacts.StoredArtifact] | None = None,
    ) -> None:
        """An event for the next transaction, and the record of the artifact it announces (the
        step's id, the object stored)."""
        with self._pending_lock:
            self._pending.append(event)
            if artifact is not None:
                self._pending_artifacts.append(artifact)

    def has_pending(self) -> bool:
        with self._pending_lock:
            return bool(self._pending)

    def status(self) -> JobStatus:
        """The job's status, read without a lock or a write (nothing to commit, so nothing to
        flush to disk). Raises _Lost if the claim lost the job."""
        with self._sessions() as session:
            status = session.scalar(select(Job.status).where(claims.held(self.claim)))
        if status is None:
            raise _Lost
        return status

    @contextmanager
    def transaction(self) -> Iterator["_Writes"]:
        """A transaction holding the job's row, the pending artifacts recorded and the pending
        events first in its batch. Raises _Lost if the claim lost the job."""
        with self._writing, self._sessions() as session:
            with session.begin():
                status = claims.hold(session, self.claim)
                if status is None:
                    raise _Lost
                with self._pending_lock:
                    batch = list(self._pending)
                    stored = list(self._pending_artifacts)
                for step_id, artifact in stored:
                    artifacts.record(session, self.claim.job_id, step_id, artifact)
                writes = _Writes(session, status, batch)
                yield writes
                events.append(session, self.claim.job_id, *writes.take())
            # Committed. Rolled back, they stay pending for the next transaction.
            with self._pending_lock:
                del self._pending[: len(batch)]
                del self._pending_artifacts[: len(stored)]


class _Writes:
    """One journal transaction: its session, the job's status (running, or canceling), and the
    events it appends (the pending ones first), written in one statement when it ends unless
    taken for a statement that appends them with its own."""

    def __init__(self, session: Session, status: JobStatus, pending: list[events.NewEvent]) -> None:
        self.session = session
        self.status = status
        self._events = list(pending)

    def event(self, event: events.NewEvent) -> None:
        self._events.append(event)

    def take(self) -> list[events.NewEvent]:
        taken, self._events = self._events, []
        return taken


class Executor:
    def __init__(
        self,
        sessions: Callable[[], Session],
        store: ArtifactStore,
        runners: Callable[[str], Runner],
        *,
        owner: str,
        lease_s: float,
        poll_s: float = 0.5,
        on_step_done: Callable[[Claim, str, float], None] = lambda claim, step, seconds: None,
        shutdown: ShutdownFlag = _NEVER,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self._runners = runners
        self._owner = owner
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._on_step_done = on_step_done
        self._shutdown = shutdown

    def claim_next(self) -> Started | None:
        """Claim the best queued job, plan its steps and start the first, in one transaction;
        None if no job is queued."""
        leased_at = time.monotonic()
        with self.sessions() as session, session.begin():
            claim = claims.claim_next(session, self._owner, self._lease_s)
            if claim is None:
                return None
            try:
                names = self._runners(claim.runner).plan(claim.input)
            except Exception as error:
                return Started(claim, [], leased_at, error)
            todo = [
                step
                for step in steps.plan(session, claim.job_id, names)
                # Done by an earlier attempt: resume after it.
                if step.status != StepStatus.SUCCEEDED
            ]
            if todo:
                steps.start(session, todo[0].id)
                events.append(session, claim.job_id, _step_event(todo[0], "step.started", {}))
            return Started(claim, todo, leased_at)

    def run(self, started: Started) -> Finished:
        began = time.monotonic()
        claim = started.claim
        journal = _Journal(self.sessions, claim)
        keeper = _LeaseKeeper(
            journal, claim, started.leased_at, self._lease_s, self._poll_s, self._shutdown
        )
        keeper.start()
        try:
            outcome = self._run_steps(started, journal, keeper)
        finally:
            keeper.stop()
        return Finished(claim, outcome, time.monotonic() - began)

    def _run_steps(self, started: Started, journal: _Journal, keeper: "_LeaseKeeper") -> Outcome:
        claim, todo = started.claim, started.todo
        current: PlannedStep | None = todo[0] if todo else None
        try:
            if started.planning_error is not None:
                raise started.planning_error
            runner = self._runners(claim.runner)
            if not todo:
                with journal.transaction() as writes:
                    claims.finish(
                        writes.session, claim, JobStatus.SUCCEEDED, preceding=writes.take()
                    )
                return Outcome.SUCCEEDED
            for index, current in enumerate(todo):
                step_started = time.monotonic()
                runner.run_step(
                    current.name, claim.input, _Context(claim, current, journal, keeper, self.store)
                )
                seconds = time.monotonic() - step_started
                following = todo[index + 1] if index + 1 < len(todo) else None
                with journal.transaction() as writes:
                    steps.finish(writes.session, current.id, StepStatus.SUCCEEDED)
                    writes.event(_step_event(current, "step.succeeded", {"seconds": seconds}))
                    if following is None:
                        # A cancel that arrives after the last step finished does not undo
                        # the result.
                        claims.finish(
                            writes.session, claim, JobStatus.SUCCEEDED, preceding=writes.take()
                        )
                        going_on = True
                    else:
                        going_on = self._start(writes, following, keeper)
                self._on_step_done(claim, current.name, seconds)
                if not going_on:
                    current = None
                    raise StepCanceled
            return Outcome.SUCCEEDED
        except _Lost:
            return Outcome.LOST
        except StepCanceled:
            if keeper.lost.is_set():
                return Outcome.LOST
            if keeper.shutting_down.is_set():
                return self._release(journal, current, SHUT_DOWN, shutting_down=True)
            return self._end(journal, current, JobStatus.CANCELED)
        except StepFailed as failure:
            error: JsonObject = {"type": "step_failed", "message": str(failure)}
            if current is not None:
                error["step"] = current.name
            return self._end(journal, current, JobStatus.FAILED, error)
        except Exception as error:
            logger.exception("job %s attempt %d raised", claim.job_id, claim.attempt)
            if keeper.lost.is_set():
                return Outcome.LOST
            return self._release(journal, current, f"{type(error).__name__}: {error}")

    @staticmethod
    def _start(writes: _Writes, step: PlannedStep, keeper: "_LeaseKeeper") -> bool:
        """Start `step` in this transaction, unless the job was canceled or the worker is
        shutting down (False)."""
        if writes.status == JobStatus.CANCELING or keeper.shutting_down.is_set():
            return False
        steps.start(writes.session, step.id)
        writes.event(_step_event(step, "step.started", {}))
        return True

    def _end(
        self,
        journal: _Journal,
        step: PlannedStep | None,
        status: JobStatus,
        error: JsonObject | None = None,
    ) -> Outcome:
        """The job ends canceled or failed, in the step it was running (if any)."""
        claim = journal.claim
        try:
            with journal.transaction() as writes:
                if step is not None:
                    step_status = StepStatus(status.value)
                    steps.finish(writes.session, step.id, step_status, error)
                    writes.event(_step_event(step, f"step.{step_status}", {"error": error}))
                claims.finish(writes.session, claim, status, error, preceding=writes.take())
        except _Lost:
            return Outcome.LOST
        return Outcome(status.value)

    def _release(
        self,
        journal: _Journal,
        step: PlannedStep | None,
        reason: str,
        *,
        shutting_down: bool = False,
    ) -> Outcome:
        """An error that is not the runner's verdict (storage or database trouble, a bug), or
        the worker shutting down (which uses up no attempt): the job gets another attempt, up to
        its maximum. If even that write fails, the lease runs out and the reconciler does the
        same."""
        claim = journal.claim
        step_status = StepStatus.CANCELED if shutting_down else StepStatus.FAILED
        try:
            with journal.transaction() as writes:
                if step is not None:
                    error: JsonObject = {"type": "internal", "message": reason}
                    steps.finish(writes.session, step.id, step_status, error)
                    writes.event(_step_event(step, f"step.{step_status}", {"error": error}))
                status = claims.release(
                    writes.session,
                    claim,
                    reason,
                    uses_attempt=not shutting_down,
                    preceding=writes.take(),
                )
        except _Lost:
            return Outcome.LOST
        except Exception:
            logger.exception("job %s: could not release it; its lease will expire", claim.job_id)
            return Outcome.LOST
        return {JobStatus.QUEUED: Outcome.RELEASED, JobStatus.CANCELED: Outcome.CANCELED}.get(
            status or JobStatus.FAILED, Outcome.FAILED
        )


def _step_event(step: PlannedStep, kind: str, payload: JsonObject) -> events.NewEvent:
    body: JsonObject = {"step": step.name, "position": step.position, **payload}
    return events.NewEvent(kind, body, step.id)


class _Context:
    """What a runner's step sees of the platform (modules.runners.base.StepContext)."""

    def __init__(
        self,
        claim: Claim,
        step: PlannedStep,
        journal: _Journal,
        keeper: "_LeaseKeeper",
        store: ArtifactStore,
    ) -> None:
        self.job_id = claim.job_id
        self.step = step.name
        self.position = step.position
        self._step = step
        self._journal = journal
        self._keeper = keeper
        self._store = store

    def progress(self, fraction: float, message: str | None = None) -> None:
        payload: JsonObject = {"fraction": round(min(max(fraction, 0.0), 1.0), 4)}
        if message is not None:
            payload["message"] = message
        self._report("step.progress", payload)

    def log(self, message: str) -> None:
        self._report("step.log", {"message": message})

    def store_artifact(self, name: str, data: bytes, content_type: str) -> None:
        self.raise_if_canceled()
        put = self._store.put(
            artifacts.key_for(self.job_id, self.position, name), data, content_type
        )
        stored = artifacts.StoredArtifact(
            name, put.bucket, put.key, content_type, put.size_bytes, put.sha256
        )
        payload: JsonObject = {
            "name": name,
            "key": stored.key,
            "content_type": content_type,
            "size_bytes": stored.size_bytes,
            "sha256": stored.sha256,
        }
        # Recorded with the step's end at the latest: a worker that dies first leaves an object
        # without a record, which the job's next attempt overwrites (the key is the same).
        event = _step_event(self._step, "artifact.stored", payload)
        self._journal.add(event, (self._step.id, stored))

    def raise_if_canceled(self) -> None:
        if self._keeper.stop_requested.is_set():
            raise StepCanceled

    def sleep(self, seconds: float) -> None:
        if self._keeper.stop_requested.wait(seconds):
            raise StepCanceled

    def _report(self, kind: str, payload: JsonObject) -> None:
        self.raise_if_canceled()
        self._journal.add(_step_event(self._step, kind, payload))


class _LeaseKeeper(threading.Thread):
    """Renews the claim's lease, writes the journal's pending events, and watches for a cancel
    request, a lost claim or the worker shutting down."""

    def __init__(
        self,
        journal: _Journal,
        claim: Claim,
        leased_at: float,
        lease_s: float,
        poll_s: float,
        shutdown: ShutdownFlag,
    ) -> None:
        super().__init__(name=f"lease-{claim.job_id}", daemon=True)
        self._journal = journal
        self._claim = claim
        self._leased_at = leased_at
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._shutdown = shutdown
        self._done = threading.Event()
        # Canceled, lost or shutting down: the runner must stop.
        self.stop_requested = threading.Event()
        self.lost = threading.Event()
        self.shutting_down = threading.Event()

    def lose(self) -> None:
        self.lost.set()
        self.stop_requested.set()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        # When the lease last ran from, by this process's clock: before the transaction that
        # claimed or renewed it began (the database counts from within it), so the renewals
        # come early rather than late.
        renewed = self._leased_at
        while not self._done.wait(self._poll_s):
            if self._shutdown.is_set() and not self.shutting_down.is_set():
                self.shutting_down.set()
                self.stop_requested.set()
            began = time.monotonic()
            renew = began - renewed >= self._lease_s / 3
            try:
                if renew or self._journal.has_pending():
                    with self._journal.transaction() as writes:
                        if renew:
                            claims.renew(writes.session, self._claim, self._lease_s)
                        status = writes.status
                else:
                    # Most ticks: a look for a cancel, not a locking transaction to commit.
                    status = self._journal.status()
            except _Lost:
                self.lose()
                return
            except Exception:
                # The database is unreachable: keep trying until the lease would have run out.
                logger.warning("job %s: lease check failed", self._claim.job_id, exc_info=True)
                if time.monotonic() - renewed >= self._lease_s:
                    self.lose()
                continue
            if renew:
                renewed = began
            if status == JobStatus.CANCELING:
                self.stop_requested.set()
