"""Prometheus scrape endpoint."""

from fastapi import APIRouter, Response

from modules.observability.metrics import render_latest

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics of this api (all worker processes)",
    response_class=Response,
    response_description="Prometheus text exposition format.",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def get_metrics() -> Response:
    # Sync on purpose: a multiprocess scrape reads files, so FastAPI runs it in a thread.
    body, content_type = render_latest()
    return Response(body, media_type=content_type)
