"""The versioned public API: every operation needs an API key."""

from typing import Any

from fastapi import APIRouter, Depends

from modules.contract.problem import Problem
from services.api.auth import authenticate
from services.api.routers import jobs, models

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "No API key, or one that is malformed, unknown or revoked "
        "(`WWW-Authenticate: Bearer`).",
        "headers": {
            "WWW-Authenticate": {
                "description": '`Bearer`; `Bearer error="invalid_token"` for a bad key.',
                "schema": {"type": "string"},
            }
        },
    }
}

router = APIRouter(prefix="/v1", dependencies=[Depends(authenticate)], responses=_UNAUTHORIZED)
router.include_router(models.router)
router.include_router(jobs.router)
