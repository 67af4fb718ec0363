"""The api's readiness: PostgreSQL at the schema revision this code expects, and the object
store's bucket (ADR 005). Not Redis: the api does not use it, the reconciler sends the run
messages (ADR 019), so a Redis outage delays jobs but leaves the api able to serve."""

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from modules.observability.health import DependencyCheck, Readiness, readiness
from modules.persistence.schema import ExpectedSchema
from modules.settings import Settings
from modules.storage.s3 import bucket_exists

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ReadinessChecker:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        schema: ExpectedSchema,
        s3: "S3Client",
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._schema = schema
        self._s3 = s3
        reuse_s = settings.readiness_cache_s
        self._checks = {
            "database": DependencyCheck(
                self._database if settings.readiness_database else None,
                settings.readiness_database_timeout_s,
                reuse_s,
            ),
            "storage": DependencyCheck(
                self._storage if settings.readiness_storage != "off" else None,
                settings.readiness_storage_timeout_s,
                reuse_s,
            ),
        }

    async def check(self) -> Readiness:
        return await readiness(self._checks)

    async def _database(self) -> str | None:
        async with self._engine.connect() as connection:
            return await self._schema.verify(connection)

    async def _storage(self) -> str | None:
        bucket = self._settings.s3_bucket
        # boto3 blocks: run it in a thread. If the deadline passes first, the thread finishes on
        # its own within the client's connect/read timeouts (set to the same bound).
        if await asyncio.to_thread(bucket_exists, self._s3, bucket):
            return None
        if self._settings.readiness_storage == "permissive":
            return f"bucket {bucket!r} does not exist yet (permissive mode)"
        raise LookupError(f"bucket {bucket!r} does not exist")
