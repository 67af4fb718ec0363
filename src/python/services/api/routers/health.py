"""Liveness and readiness, for orchestrators and load balancers."""

from enum import Enum

from fastapi import FastAPI, Response, status

from modules.buildinfo import VERSION
from modules.observability.health import Health, Readiness
from services.api.dependencies import Readiness as ReadinessCheck

TAGS: list[str | Enum] = ["operations"]


async def get_health() -> Health:
    # Touches no dependency on purpose: a database outage must not get the api restarted.
    return Health(status="ok", version=VERSION)


async def get_readiness(checker: ReadinessCheck, response: Response) -> Readiness:
    readiness = await checker.check()
    if readiness.status != "ready":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    response.headers["Cache-Control"] = "no-store"
    return readiness


def add_routes(app: FastAPI) -> None:
    """On the app itself, not through `include_router`: FastAPI resolves an included router's
    routes on every request it serves (~7 µs), and probes are the api's most frequent requests."""
    app.get(
        "/healthz",
        tags=TAGS,
        summary="Liveness: the process serves requests",
        response_description="The process is up.",
    )(get_health)
    app.get(
        "/readyz",
        tags=TAGS,
        summary="Readiness: PostgreSQL (at the expected schema) and the object store",
        response_description="Every enabled check passed.",
        responses={
            status.HTTP_503_SERVICE_UNAVAILABLE: {
                "model": Readiness,
                "description": "A check failed or timed out; the body says which.",
            }
        },
    )(get_readiness)
