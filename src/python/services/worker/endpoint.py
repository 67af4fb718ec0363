"""The worker's HTTP endpoint, in daemon threads of its main process: `GET /healthz` (alive),
`GET /readyz` (can work now: see readiness.py) and `GET /metrics` for Prometheus."""

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from modules.buildinfo import VERSION
from modules.observability.health import Health, Readiness
from modules.observability.metrics import render_latest

logger = logging.getLogger(__name__)

JSON = "application/json"
_HEALTH = Health(status="ok", version=VERSION).model_dump_json().encode()


def serve(host: str, port: int, readiness: Callable[[], Readiness]) -> ThreadingHTTPServer:
    """Listen on host:port (OSError if that fails) and serve from a daemon thread; the caller
    calls `shutdown()` and `server_close()` when the worker stops."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            started = time.perf_counter()
            path = urlsplit(self.path).path
            if path == "/healthz":
                # Answering is the proof of life: no dependency is asked.
                self._reply(200, _HEALTH, JSON)
            elif path == "/readyz":
                answer = readiness()
                code = 200 if answer.status == "ready" else 503
                self._reply(code, answer.model_dump_json().encode(), JSON, no_store=True)
            elif path == "/metrics":
                # The main process lives as long as the worker: its process_* series say so.
                body, content_type = render_latest(process_metrics=True)
                self._reply(200, body, content_type)
            else:
                self._reply(404, b'{"status": "not found"}', JSON)
            # Debug: probes and scrapes every few seconds would drown the worker's own lines.
            logger.debug(
                "GET %s %d",
                path,
                self._status,
                extra={"path": path, "status": self._status, "duration_ms": _ms_since(started)},
            )

        def _reply(self, code: int, body: bytes, content_type: str, no_store: bool = False) -> None:
            self._status = code
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if no_store:
                self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # do_GET logs each request, with its duration

        def log_message(self, format: str, *args: Any) -> None:
            # The default writes plain text to stderr (e.g. for a malformed request).
            logger.debug("http %s", format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
    return server


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
