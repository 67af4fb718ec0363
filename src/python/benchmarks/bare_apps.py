"""Baselines for the api benchmark: the same /healthz body with no Forge middleware."""

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from modules.buildinfo import VERSION
from modules.observability.health import Health

fastapi_app = FastAPI()


@fastapi_app.get("/healthz")
async def get_health() -> Health:
    return Health(status="ok", version=VERSION)


async def _starlette_health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": VERSION})


starlette_app = Starlette(routes=[Route("/healthz", _starlette_health)])
