"""The worker's HTTP endpoint: `GET /metrics` for Prometheus, `GET /healthz` for orchestrators.

It runs in a daemon thread of the worker's main process, where Celery sends worker_ready once
the consumer is connected: /healthz answers 503 until then, and again once shutdown begins.
"""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from celery import signals

from modules.observability.metrics import render_latest

logger = logging.getLogger(__name__)

_ready = threading.Event()


@signals.worker_ready.connect
def _on_ready(**_: Any) -> None:
    _ready.set()


@signals.worker_shutting_down.connect
def _on_shutting_down(sig: str, how: str, **_: Any) -> None:
    _ready.clear()
    logger.info("%s shutdown on %s: no longer ready", how, sig)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            body, content_type = render_latest()
            self._reply(200, body, content_type)
        elif path == "/healthz":
            ready = _ready.is_set()
            status = {"status": "ready" if ready else "not ready"}
            self._reply(200 if ready else 503, json.dumps(status).encode(), "application/json")
        else:
            self._reply(404, b'{"status": "not found"}', "application/json")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes plain text to stderr; scrapes every few seconds are debug noise.
        logger.debug("http %s", format % args)


def serve(host: str, port: int) -> ThreadingHTTPServer:
    """Listen on host:port (OSError if that fails) and serve from a daemon thread; the caller
    calls `shutdown()` and `server_close()` when the worker stops."""
    server = ThreadingHTTPServer((host, port), _Handler)
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
    return server
