"""The versioned public API."""

from fastapi import APIRouter

from services.api.routers import jobs, models

router = APIRouter(prefix="/v1")
router.include_router(models.router)
router.include_router(jobs.router)
