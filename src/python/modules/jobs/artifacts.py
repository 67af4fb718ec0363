"""Recording an artifact a step stored. Keys are deterministic, so a rerun overwrites the object
and updates its row instead of adding one."""

import uuid
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from modules.persistence.models import Artifact


@dataclass(frozen=True)
class StoredArtifact:
    name: str
    bucket: str
    key: str
    content_type: str
    size_bytes: int
    sha256: str


def key_for(job_id: uuid.UUID, position: int, name: str) -> str:
    return f"jobs/{job_id}/{position}/{name}"


def record(session: Session, job_id: uuid.UUID, step_id: uuid.UUID, stored: StoredArtifact) -> None:
    values = {
        "job_id": job_id,
        "step_id": step_id,
        "name": stored.name,
        "bucket": stored.bucket,
        "key": stored.key,
        "content_type": stored.content_type,
        "size_bytes": stored.size_bytes,
        "sha256": stored.sha256,
    }
    statement = insert(Artifact).values(values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Artifact.bucket, Artifact.key],
            set_={
                "content_type": statement.excluded.content_type,
                "size_bytes": statement.excluded.size_bytes,
                "sha256": statement.excluded.sha256,
                "created_at": func.now(),
            },
        )
    )
