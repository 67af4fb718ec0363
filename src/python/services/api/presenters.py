"""Rows to /v1 bodies."""

import uuid
from collections.abc import Callable
from datetime import datetime

from fastapi import Request

from modules.contract.v1 import ArtifactOut, JobOut, JobUrls, ModelOut, StepOut
from modules.jobs.reads import JobView
from modules.persistence.models import Artifact, Model

# (bucket, key) -> a presigned GET URL and when it expires
type Signer = Callable[[str, str], tuple[str, datetime]]


def model_out(model: Model) -> ModelOut:
    return ModelOut(
        name=model.name,
        version=model.version,
        ref=f"{model.name}@{model.version}",
        task=model.task,
        runner=model.runner,
        description=model.description,
        input_schema=model.input_schema,
        default_parameters=model.default_parameters,
        created_at=model.created_at,
    )


def artifact_out(artifact: Artifact, position: int, sign: Signer) -> ArtifactOut:
    url, expires_at = sign(artifact.bucket, artifact.key)
    return ArtifactOut(
        name=artifact.name,
        step=position,
        content_type=artifact.content_type,
        size_bytes=artifact.size_bytes,
        sha256=artifact.sha256,
        url=url,
        url_expires_at=expires_at,
    )


def artifacts_out(view: JobView, sign: Signer) -> list[ArtifactOut]:
    positions = {step.id: step.position for step in view.steps}
    return [
        artifact_out(artifact, positions.get(artifact.step_id, 0) if artifact.step_id else 0, sign)
        for artifact in view.artifacts
    ]


def job_out(view: JobView, request: Request, sign: Signer) -> JobOut:
    job = view.job
    return JobOut(
        id=job.id,
        model=f"{view.model.name}@{view.model.version}",
        status=job.status,
        input=job.input,
        priority=job.priority,
        error=job.error,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        cancel_requested_at=job.cancel_requested_at,
        steps=[
            StepOut(
                name=step.name,
                position=step.position,
                status=step.status,
                attempts=step.attempts,
                started_at=step.started_at,
                finished_at=step.finished_at,
                error=step.error,
            )
            for step in view.steps
        ],
        output=artifacts_out(view, sign),
        urls=job_urls(request, job.id),
    )


def job_urls(request: Request, job_id: uuid.UUID) -> JobUrls:
    # One url_for, not four: each walks the app's routes, and every job body (a page has up to
    # 100) carries these. The others are the job's sub-resources (routers.jobs; a test follows
    # each URL).
    url = str(request.url_for("get_job", job_id=job_id))
    return JobUrls(
        self=url, cancel=f"{url}/cancel", events=f"{url}/events", artifacts=f"{url}/artifacts"
    )
