"""Running one claimed job with its runner: the worker's whole job, with no Celery in it.

While the job runs, a lease keeper thread renews the lease every lease/3 and looks for a cancel
request every `poll_s`. The runner sees a cancel through its context (raise_if_canceled, sleep),
and so does a holder that lost its job, which then writes nothing more.
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from modules.jobs import artifacts, claims, events, steps
from modules.jobs.claims import Claim
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
class _Step:
    id: uuid.UUID
    position: int
    name: str
    status: StepStatus


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

    def claim_next(self) -> Claim | None:
        with self.sessions() as session, session.begin():
            return claims.claim_next(session, self._owner, self._lease_s)

    def run(self, claim: Claim) -> Finished:
        started = time.monotonic()
        keeper = _LeaseKeeper(self.sessions, claim, self._lease_s, self._poll_s, self._shutdown)
        keeper.start()
        try:
            outcome = self._run_steps(claim, keeper)
        finally:
            keeper.stop()
        return Finished(claim, outcome, time.monotonic() - started)

    def _run_steps(self, claim: Claim, keeper: "_LeaseKeeper") -> Outcome:
        current: _Step | None = None
        try:
            runner = self._runners(claim.runner)
            with self.sessions() as session, session.begin():
                if claims.hold(session, claim) is None:
                    return Outcome.LOST
                planned = [
                    _Step(row.id, row.position, row.name, row.status)
                    for row in steps.plan(session, claim.job_id, runner.plan(claim.input))
                ]
            for current in planned:
                if current.status == StepStatus.SUCCEEDED:
                    continue  # done by an earlier attempt: resume after it
                if keeper.shutting_down.is_set():
                    raise StepCanceled
                with self.sessions() as session, session.begin():
                    status = claims.hold(session, claim)
                    if status is None:
                        return Outcome.LOST
                    if status == JobStatus.CANCELING:
                        raise StepCanceled
                    steps.start(session, current.id)
                    self.step_event(session, claim, current, "step.started", {})
                step_started = time.monotonic()
                runner.run_step(current.name, claim.input, _Context(self, claim, current, keeper))
                seconds = time.monotonic() - step_started
                with self.sessions() as session, session.begin():
                    if claims.hold(session, claim) is None:
                        return Outcome.LOST
                    steps.finish(session, current.id, StepStatus.SUCCEEDED)
                    self.step_event(session, claim, current, "step.succeeded", {"seconds": seconds})
                self._on_step_done(claim, current.name, seconds)
            # A cancel that arrives after the last step finished does not undo the result.
            return self._end(claim, None, JobStatus.SUCCEEDED)
        except StepCanceled:
            if keeper.lost.is_set():
                return Outcome.LOST
            if keeper.shutting_down.is_set():
                return self._release(claim, current, SHUT_DOWN, shutting_down=True)
            return self._end(claim, current, JobStatus.CANCELED)
        except StepFailed as failure:
            error: JsonObject = {"type": "step_failed", "message": str(failure)}
            if current is not None:
                error["step"] = current.name
            return self._end(claim, current, JobStatus.FAILED, error)
        except Exception as error:
            logger.exception("job %s attempt %d raised", claim.job_id, claim.attempt)
            if keeper.lost.is_set():
                return Outcome.LOST
            return self._release(claim, current, f"{type(error).__name__}: {error}")

    def _end(
        self,
        claim: Claim,
        step: _Step | None,
        status: JobStatus,
        error: JsonObject | None = None,
    ) -> Outcome:
        with self.sessions() as session, session.begin():
            if claims.hold(session, claim) is None:
                return Outcome.LOST
            if step is not None and status != JobStatus.SUCCEEDED:
                step_status = StepStatus(status.value)
                steps.finish(session, step.id, step_status, error)
                self.step_event(session, claim, step, f"step.{step_status}", {"error": error})
            claims.finish(session, claim, status, error)
        return Outcome(status.value)

    def _release(
        self,
        claim: Claim,
        step: _Step | None,
        reason: str,
        *,
        shutting_down: bool = False,
    ) -> Outcome:
        """An error that is not the runner's verdict (storage or database trouble, a bug), or
        the worker shutting down (which uses up no attempt): the job gets another attempt, up to
        its maximum. If even that write fails, the lease runs out and the reconciler does the
        same."""
        step_status = StepStatus.CANCELED if shutting_down else StepStatus.FAILED
        try:
            with self.sessions() as session, session.begin():
                if claims.hold(session, claim) is None:
                    return Outcome.LOST
                if step is not None:
                    error: JsonObject = {"type": "internal", "message": reason}
                    steps.finish(session, step.id, step_status, error)
                    self.step_event(session, claim, step, f"step.{step_status}", {"error": error})
                status = claims.release(session, claim, reason, uses_attempt=not shutting_down)
        except Exception:
            logger.exception("job %s: could not release it; its lease will expire", claim.job_id)
            return Outcome.LOST
        return {JobStatus.QUEUED: Outcome.RELEASED, JobStatus.CANCELED: Outcome.CANCELED}.get(
            status or JobStatus.FAILED, Outcome.FAILED
        )

    def step_event(
        self, session: Session, claim: Claim, step: _Step, kind: str, payload: JsonObject
    ) -> None:
        body: JsonObject = {"step": step.name, "position": step.position, **payload}
        events.append(
            session, claim.job_id, events.NewEvent(kind, body, step.id), only_if=claims.held(claim)
        )


class _Context:
    """What a runner's step sees of the platform (modules.runners.base.StepContext)."""

    def __init__(self, executor: Executor, claim: Claim, step: _Step, keeper: "_LeaseKeeper"):
        self.job_id = claim.job_id
        self.step = step.name
        self.position = step.position
        self._executor = executor
        self._claim = claim
        self._step = step
        self._keeper = keeper

    def progress(self, fraction: float, message: str | None = None) -> None:
        payload: JsonObject = {"fraction": round(min(max(fraction, 0.0), 1.0), 4)}
        if message is not None:
            payload["message"] = message
        self._append("step.progress", payload)

    def log(self, message: str) -> None:
        self._append("step.log", {"message": message})

    def store_artifact(self, name: str, data: bytes, content_type: str) -> None:
        self.raise_if_canceled()
        put = self._executor.store.put(
            artifacts.key_for(self.job_id, self.position, name), data, content_type
        )
        stored = artifacts.StoredArtifact(
            name, put.bucket, put.key, content_type, put.size_bytes, put.sha256
        )
        with self._executor.sessions() as session, session.begin():
            if claims.hold(session, self._claim) is None:
                self._keeper.lose()
                raise StepCanceled
            artifacts.record(session, self.job_id, self._step.id, stored)
            payload: JsonObject = {
                "name": name,
                "key": stored.key,
                "content_type": content_type,
                "size_bytes": stored.size_bytes,
                "sha256": stored.sha256,
            }
            self._executor.step_event(session, self._claim, self._step, "artifact.stored", payload)

    def raise_if_canceled(self) -> None:
        if self._keeper.stop_requested.is_set():
            raise StepCanceled

    def sleep(self, seconds: float) -> None:
        if self._keeper.stop_requested.wait(seconds):
            raise StepCanceled

    def _append(self, kind: str, payload: JsonObject) -> None:
        self.raise_if_canceled()
        with self._executor.sessions() as session, session.begin():
            self._executor.step_event(session, self._claim, self._step, kind, payload)


class _LeaseKeeper(threading.Thread):
    """Renews the claim's lease and watches for a cancel request, a lost claim or the worker
    shutting down."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        claim: Claim,
        lease_s: float,
        poll_s: float,
        shutdown: ShutdownFlag,
    ) -> None:
        super().__init__(name=f"lease-{claim.job_id}", daemon=True)
        self._sessions = sessions
        self._claim = claim
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
        renewed = time.monotonic()
        while not self._done.wait(self._poll_s):
            if self._shutdown.is_set() and not self.shutting_down.is_set():
                self.shutting_down.set()
                self.stop_requested.set()
            try:
                with self._sessions() as session, session.begin():
                    if time.monotonic() - renewed >= self._lease_s / 3:
                        status = claims.renew(session, self._claim, self._lease_s)
                        renewed = time.monotonic()
                    else:
                        status = session.scalar(select(Job.status).where(claims.held(self._claim)))
            except Exception:
                # The database is unreachable: keep trying until the lease would have run out.
                logger.warning("job %s: lease check failed", self._claim.job_id, exc_info=True)
                if time.monotonic() - renewed >= self._lease_s:
                    self.lose()
                continue
            if status is None:
                self.lose()
            elif status == JobStatus.CANCELING:
                self.stop_requested.set()
