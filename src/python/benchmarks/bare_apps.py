"""Baselines for the api benchmarks: the same /healthz body with no Forge middleware, and a job
submission that inserts the same `jobs` row with the same driver and pool, and nothing else (no
schema validation, idempotency, event or message)."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import insert, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from modules.buildinfo import VERSION
from modules.observability.health import Health
from modules.persistence.engine import create_async_database_engine
from modules.persistence.models import Job, Model
from modules.settings import Settings

# The owner of every job the benchmarks submit.
OWNER = "bench"

fastapi_app = FastAPI()


@fastapi_app.get("/healthz")
async def get_health() -> Health:
    return Health(status="ok", version=VERSION)


async def _starlette_health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": VERSION})


starlette_app = Starlette(routes=[Route("/healthz", _starlette_health)])


class JobBody(BaseModel):
    model: str
    input: dict[str, Any]


class JobCreated(BaseModel):
    id: uuid.UUID


@asynccontextmanager
async def _database(app: FastAPI) -> AsyncIterator[None]:
    # FORGE_DATABASE_URL and FORGE_DATABASE_POOL_SIZE, as the api reads them.
    engine = create_async_database_engine(Settings())
    async with engine.connect() as connection:
        # The models a bare service would hold in memory: name@version -> (id, defaults).
        rows = await connection.execute(
            select(Model.name, Model.version, Model.id, Model.default_parameters)
        )
        app.state.models = {f"{r.name}@{r.version}": (r.id, r.default_parameters) for r in rows}
    app.state.engine = engine
    yield
    await engine.dispose()


jobs_app = FastAPI(lifespan=_database)


@jobs_app.post("/jobs", status_code=202)
async def create_job(body: JobBody, request: Request) -> JobCreated:
    model_id, defaults = request.app.state.models[body.model]
    async with request.app.state.engine.begin() as connection:
        job_id = await connection.scalar(
            insert(Job)
            .values(
                model_id=model_id, owner=OWNER, input={**defaults, **body.input}, max_attempts=3
            )
            .returning(Job.id)
        )
    return JobCreated(id=job_id)
