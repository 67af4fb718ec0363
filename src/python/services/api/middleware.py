"""The request lifecycle as one pure ASGI middleware (no BaseHTTPMiddleware: it costs a task
and a stream per request): request ID, metrics, access log, and the last-resort 500; and the
limit on request bodies."""

import logging
import time
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modules.contract.problem import MEDIA_TYPE
from modules.observability.logs import request_id_var
from modules.observability.request_id import HEADER, accept_or_new
from services.api.metrics import IN_FLIGHT, observe_request
from services.api.problems import INTERNAL_ERROR_DETAIL, problem_body

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("services.api.access")

_HEADER_BYTES = HEADER.encode()
# Paths that matched no route share one label value, so scanners cannot explode cardinality.
UNMATCHED_ROUTE = "<unmatched>"


class RequestLifecycleMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        supplied = next((value for name, value in scope["headers"] if name == _HEADER_BYTES), None)
        request_id = accept_or_new(supplied)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = HTTPStatus.INTERNAL_SERVER_ERROR.value
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", ()),
                    (_HEADER_BYTES, request_id.encode()),
                ]
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            # Logged here, once, with the traceback; the client gets a problem body only.
            logger.exception("unhandled error serving %s %s", scope["method"], scope["path"])
            if not response_started:
                await _send_internal_error(scope, send_with_request_id)
        finally:
            IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            observe_request(scope["method"], route, status, elapsed)
            if access_logger.isEnabledFor(logging.INFO):
                _log_access(scope, route, status, elapsed)
            request_id_var.reset(token)


def _log_access(scope: Scope, route: str, status: int, elapsed: float) -> None:
    """What `access_logger.info()` does, minus its lookup of the caller's file and line, which
    Forge's lines never carry: this runs on every request."""
    method, path = scope["method"], scope["path"]
    record = access_logger.makeRecord(
        access_logger.name,
        logging.INFO,
        fn="",
        lno=0,
        msg="%s %s %d",
        args=(method, path, status),
        exc_info=None,
        extra={
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "client": scope["client"][0] if scope.get("client") else None,
        },
    )
    access_logger.handle(record)


async def _send_internal_error(scope: Scope, send: Send) -> None:
    error = HTTPException(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR_DETAIL)
    await _send_problem(scope, send, error)


async def _send_problem(scope: Scope, send: Send, error: HTTPException) -> None:
    body = problem_body(error.status_code, detail=error.detail, instance=scope["path"])
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body is larger than {max_bytes} bytes.")


class BodyLimitMiddleware:
    """Refuses a body over `max_bytes` with a 413 problem: before reading it when its
    Content-Length says so, else once the bytes read pass the limit (raised from `receive` as an
    HTTPException, which FastAPI's body parsing passes on to the problem handlers)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _send_problem(scope, send, BodyTooLarge(self.max_bytes))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
