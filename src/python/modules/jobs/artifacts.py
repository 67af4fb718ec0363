"""Recording an artifact a step stored. Keys are deterministic, so a rerun overwrites the object
and updates its row instead of adding one."""

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session


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


# Every artifact: SQL rather than a construct built per call (ADR 016).
_RECORD = text("""
    INSERT INTO artifacts (job_id, step_id, name, bucket, key, content_type, size_bytes, sha256)
    VALUES (:job_id, :step_id, :name, :bucket, :key, :content_type, :size_bytes, :sha256)
    ON CONFLICT (bucket, key) DO UPDATE
    SET content_type = excluded.content_type, size_bytes = excluded.size_bytes,
        sha256 = excluded.sha256, created_at = now()
    """)


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
    session.execute(_RECORD, values)
