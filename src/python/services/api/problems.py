"""Every error answers with an RFC 9457 problem body (`application/problem+json`)."""

import json
from collections.abc import Sequence
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from modules.contract.problem import MEDIA_TYPE, FieldError, Problem
from modules.observability.logs import request_id_var

INTERNAL_ERROR_DETAIL = "An unexpected error occurred; quote the request ID when reporting it."


def problem_body(
    status: int,
    *,
    detail: str | None = None,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
) -> bytes:
    problem = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        request_id=request_id_var.get(),
        errors=errors,
    )
    return problem.model_dump_json(exclude_none=True).encode()


class ProblemError(Exception):
    """Raised by a route to answer with a problem body that lists field errors."""

    def __init__(self, status: int, detail: str, errors: list[FieldError]) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors


async def _problem_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return Response(
        problem_body(exc.status, detail=exc.detail, instance=request.url.path, errors=exc.errors),
        status_code=exc.status,
        media_type=MEDIA_TYPE,
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Starlette's default detail is the status phrase, which `title` already says; a structured
    # detail (FastAPI allows any JSON value) is rendered as JSON text.
    detail: str | None = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    return Response(
        problem_body(exc.status_code, detail=detail, instance=request.url.path),
        status_code=exc.status_code,
        headers=exc.headers,
        media_type=MEDIA_TYPE,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # The offending input is left out on purpose: it can be large or secret.
    errors = [
        FieldError(
            loc=list(error["loc"]),
            msg=error["msg"],
            type=error["type"],
            pointer=_pointer(error["loc"]),
        )
        for error in exc.errors()
    ]
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    return Response(
        problem_body(
            status, detail="The request is not valid.", instance=request.url.path, errors=errors
        ),
        status_code=status,
        media_type=MEDIA_TYPE,
    )


def _pointer(loc: Sequence[str | int]) -> str | None:
    if not loc or loc[0] != "body":
        return None
    return "".join(f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in loc[1:])


def install_problem_handlers(app: FastAPI) -> None:
    """Unknown routes, wrong methods and invalid requests. Unhandled exceptions are answered
    by the request middleware, which also logs them (once)."""
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ProblemError, _problem_error)
