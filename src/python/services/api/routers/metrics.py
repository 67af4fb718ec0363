"""Prometheus scrape endpoint."""

from fastapi import FastAPI, Response

from modules.observability.metrics import render_latest
from services.api.routers.health import TAGS


def get_metrics() -> Response:
    # Sync on purpose: a multiprocess scrape reads files, so FastAPI runs it in a thread.
    body, content_type = render_latest()
    return Response(body, media_type=content_type)


def add_routes(app: FastAPI) -> None:
    """On the app itself, like the health routes (see there)."""
    app.get(
        "/metrics",
        tags=TAGS,
        summary="Prometheus metrics of this api (all worker processes)",
        response_class=Response,
        response_description="Prometheus text exposition format.",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )(get_metrics)
