"""/v1/jobs: submit, read, list, cancel, and a job's events and artifacts."""

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from sse_starlette import EventSourceResponse

from modules.contract.problem import FieldError, Problem
from modules.contract.v1 import (
    MODEL_REF_PATTERN,
    ArtifactList,
    EventOut,
    EventPage,
    JobCreate,
    JobList,
    JobOut,
)
from modules.jobs import cancel as cancel_module
from modules.jobs import events, reads, submission
from modules.jobs.models import ModelNotFound
from modules.persistence.statuses import JobStatus
from services.api.auth import CurrentPrincipal
from services.api.dependencies import DatabaseSession, Following, JobsConfig
from services.api.following import EVENT_STREAM, MAX_WAIT_S, preferred_wait, wants_stream
from services.api.presenters import artifacts_out, job_out
from services.api.problems import ProblemError

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_PAGE = 100
# Event pages and their cursors; 2^31 - 1 keeps `after` a PostgreSQL-friendly bigint far above
# any real stream.
MAX_EVENT_SEQ = 2**31 - 1
IDEMPOTENCY_KEY_MAX = 255

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such job (or another owner's)."}
}
# OpenAPI links from a job body to what can be done with it next (schemathesis follows them).
_JOB_LINKS = {
    name: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
    for name, operation in [
        ("GetJob", "get_job"),
        ("CancelJob", "cancel_job"),
        ("ListJobEvents", "list_job_events"),
        ("ListJobArtifacts", "list_job_artifacts"),
    ]
}
Prefer = Annotated[
    str | None,
    Header(
        description=f"`wait=N` (1 to {MAX_WAIT_S}): hold the response until the job has ended "
        "or N seconds have passed, then answer with the job as it is "
        "(`Preference-Applied: wait=N`).",
    ),
]


@router.post(
    "",
    status_code=202,
    summary="Submit a job",
    response_description="Accepted: the job is queued. `Location` is its URL.",
    responses={
        400: {"model": Problem, "description": "The body is not JSON."},
        202: {"links": _JOB_LINKS},
        200: {
            "model": JobOut,
            "links": _JOB_LINKS,
            "description": "A replay of an earlier request with the same `Idempotency-Key` and "
            "body: the original job (`Idempotent-Replayed: true`).",
        },
        404: {"model": Problem, "description": "No such model."},
        413: {"model": Problem, "description": "The body or the input is too large."},
        422: {
            "model": Problem,
            "description": "The input does not match the model's schema (every error with its "
            "JSON pointer), or the `Idempotency-Key` was used with another body.",
        },
        429: {
            "model": Problem,
            "description": "The caller has as many queued jobs as it may: retry later.",
            "headers": {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            },
        },
    },
)
async def create_job(
    body: JobCreate,
    request: Request,
    response: Response,
    session: DatabaseSession,
    config: JobsConfig,
    follower: Following,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX,
            description="Retries with the same key and body return the original job.",
        ),
    ] = None,
    prefer: Prefer = None,
) -> JobOut:
    input_bytes = len(json.dumps(body.input, separators=(",", ":"), ensure_ascii=False).encode())
    if input_bytes > config.max_input_bytes:
        raise HTTPException(
            413, f"The input is {input_bytes} bytes as JSON; at most {config.max_input_bytes}."
        )
    wanted = submission.Submission(body.model, body.input, idempotency_key, body.priority)
    try:
        accepted = await session.run_sync(
            submission.submit,
            wanted,
            owner=principal.owner,
            max_attempts=config.max_attempts,
            max_queued=config.max_queued,
            resolve=config.models.resolve,
        )
        await session.commit()
    except ModelNotFound as error:
        raise HTTPException(
            404, f"No model {error.reference!r}: GET /v1/models lists them."
        ) from None
    except submission.InvalidInput as error:
        raise _invalid_input(error) from None
    except submission.IdempotencyConflict:
        raise HTTPException(
            422, "This Idempotency-Key was used with another request body: use a new key."
        ) from None
    except submission.QueueFull as full:
        raise HTTPException(
            429,
            f"{full.limit} of your jobs are queued, the most allowed: retry once some started.",
            headers={"Retry-After": str(config.queue_full_retry_after_s)},
        ) from None
    view = accepted.created or await session.run_sync(
        reads.get_job, accepted.job_id, owner=principal.owner
    )
    assert view is not None
    wait = preferred_wait(prefer)
    if accepted.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    else:
        # The run message is the reconciler's to send, once the insert's commit notifies it
        # (ADR 019): the api does not talk to Redis, and a Redis outage holds no response.
        config.on_submitted(f"{view.model.name}@{view.model.version}")
    if wait is not None:
        view = await follower.hold(session, view, wait)
        if view is None:
            raise HTTPException(404, f"No job {accepted.job_id}.")
        response.headers["Preference-Applied"] = f"wait={wait}"
    out = job_out(view, request, config.sign)
    response.headers["Location"] = out.urls.self
    return out


@router.get(
    "",
    summary="List jobs, newest first",
    responses={400: {"model": Problem, "description": "A cursor this API did not return."}},
)
async def list_jobs(
    request: Request,
    session: DatabaseSession,
    config: JobsConfig,
    principal: CurrentPrincipal,
    status: JobStatus | None = None,
    model: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=MODEL_REF_PATTERN)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="From `next`.")] = None,
) -> JobList:
    try:
        page = await session.run_sync(
            reads.list_jobs,
            owner=principal.owner,
            limit=limit,
            cursor=cursor,
            status=status,
            model=model,
        )
    except reads.InvalidCursor:
        raise HTTPException(400, "The cursor is not one this API returned.") from None
    next_url = None
    if page.next_cursor is not None:
        next_url = str(request.url.include_query_params(cursor=page.next_cursor))
    return JobList(data=[job_out(view, request, config.sign) for view in page.jobs], next=next_url)


@router.get("/{job_id}", summary="Get a job", responses={**_NOT_FOUND, 200: {"links": _JOB_LINKS}})
async def get_job(
    job_id: uuid.UUID,
    request: Request,
    response: Response,
    session: DatabaseSession,
    config: JobsConfig,
    follower: Following,
    principal: CurrentPrincipal,
    prefer: Prefer = None,
) -> JobOut:
    view = await session.run_sync(reads.get_job, job_id, owner=principal.owner)
    if view is not None and (wait := preferred_wait(prefer)) is not None:
        view = await follower.hold(session, view, wait)
        response.headers["Preference-Applied"] = f"wait={wait}"
    if view is None:
        raise HTTPException(404, f"No job {job_id}.")
    return job_out(view, request, config.sign)


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job",
    response_description="The job: `canceled` if it was queued, `canceling` while its worker "
    "stops it, unchanged if it had already ended.",
    responses=_NOT_FOUND,
)
async def cancel_job(
    job_id: uuid.UUID,
    request: Request,
    session: DatabaseSession,
    config: JobsConfig,
    principal: CurrentPrincipal,
) -> JobOut:
    cancellation = await session.run_sync(cancel_module.cancel, job_id, owner=principal.owner)
    await session.commit()
    if cancellation is None:
        raise HTTPException(404, f"No job {job_id}.")
    view = await session.run_sync(reads.get_job, job_id, owner=principal.owner)
    assert view is not None
    if cancellation.ended:
        job = view.job
        assert job.finished_at is not None
        config.on_finished(
            f"{view.model.name}@{view.model.version}",
            cancellation.status,
            (job.finished_at - job.created_at).total_seconds(),
        )
    return job_out(view, request, config.sign)


@router.get(
    "/{job_id}/events",
    summary="A job's events, in order: a JSON page, or a live stream",
    description="With `Accept: text/event-stream`, Server-Sent Events: each event's `id` is its "
    "`seq`, `event` its type and `data` the event as JSON; a comment line is sent when no event "
    "came for a while. The stream ends after the job's terminal event (job.succeeded, "
    "job.failed, job.canceled). A client that reconnects with `Last-Event-ID` (or `after`) "
    "gets every later event exactly once.",
    response_model=EventPage,
    responses={
        200: {"content": {EVENT_STREAM: {"schema": {"type": "string"}}}},
        404: {"model": Problem, "description": "No such job."},
    },
)
async def list_job_events(
    job_id: uuid.UUID,
    request: Request,
    session: DatabaseSession,
    follower: Following,
    principal: CurrentPrincipal,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_SEQ, description="The last seq seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    last_event_id: Annotated[
        int | None,
        Header(ge=0, le=MAX_EVENT_SEQ, description="A stream's last `id` seen; wins over `after`."),
    ] = None,
) -> EventPage | EventSourceResponse:
    if wants_stream(request.headers.get("accept")):
        cursor = after if last_event_id is None else last_event_id
        return await follower.stream(session, job_id, cursor, owner=principal.owner)
    view = await session.run_sync(reads.get_job, job_id, owner=principal.owner)
    if view is None:
        raise HTTPException(404, f"No job {job_id}.")
    rows = await session.run_sync(events.page, job_id, after, limit)
    last = rows[-1].seq if rows else after
    return EventPage(
        data=[
            EventOut(seq=row.seq, type=row.type, payload=row.payload, created_at=row.created_at)
            for row in rows
        ],
        next=str(request.url.include_query_params(after=last)),
    )


@router.get("/{job_id}/artifacts", summary="A job's artifacts", responses=_NOT_FOUND)
async def list_job_artifacts(
    job_id: uuid.UUID, session: DatabaseSession, config: JobsConfig, principal: CurrentPrincipal
) -> ArtifactList:
    view = await session.run_sync(reads.get_job, job_id, owner=principal.owner)
    if view is None:
        raise HTTPException(404, f"No job {job_id}.")
    return ArtifactList(data=artifacts_out(view, config.sign))


def _invalid_input(error: submission.InvalidInput) -> ProblemError:
    errors = [
        FieldError(
            loc=["body", *e.pointer.split("/")[1:]],
            msg=e.message,
            type="input_schema",
            pointer=e.pointer,
        )
        for e in error.errors
    ]
    return ProblemError(422, "The input does not match the model's input_schema.", errors)
