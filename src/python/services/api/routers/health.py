"""Liveness and readiness, for orchestrators and load balancers."""

from fastapi import APIRouter, Response, status

from modules.buildinfo import VERSION
from modules.observability.health import Health, Readiness
from services.api.dependencies import Readiness as ReadinessCheck

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness: the process serves requests",
    response_description="The process is up.",
)
async def get_health() -> Health:
    # Touches no dependency on purpose: a database outage must not get the api restarted.
    return Health(status="ok", version=VERSION)


@router.get(
    "/readyz",
    summary="Readiness: PostgreSQL (at the expected schema), the object store and the broker",
    response_description="Every enabled check passed.",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": Readiness,
            "description": "A check failed or timed out; the body says which.",
        }
    },
)
async def get_readiness(checker: ReadinessCheck, response: Response) -> Readiness:
    readiness = await checker.check()
    if readiness.status != "ready":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    response.headers["Cache-Control"] = "no-store"
    return readiness
