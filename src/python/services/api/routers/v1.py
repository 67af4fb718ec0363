"""The versioned public API. Job submission (milestone M1) lands here."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
