"""JSON logging shared by every Forge process: one JSON object per line, on stdout (the
one-shot commands: stderr, as their stdout is a command's output).

Context (a request ID, a Celery task) reaches log lines through logging filters that copy it
onto each record; the formatter writes every such attribute. `logging_config()` returns a
`dictConfig` mapping so that uvicorn can apply the same setup in each worker process it spawns
(where services.api.app calls `apply_process_settings()`); other processes call
`configure_logging()`.
"""

import logging
import logging.config
import time
import traceback
from contextvars import ContextVar
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
# (uvicorn adds color_message for its own formatter.)
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)))
_STANDARD_ATTRIBUTES |= {"message", "asctime", "color_message", "taskName"}


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON line: `ts` (UTC, ms), `level`, `logger`, `msg`, `service`,
    `pid`, every attribute a filter or `extra=` added (unless None), and `exc_type` and
    `traceback` for exceptions. Hand-written rather than python-json-logger's: it writes the
    api's access line on every request, and costs less (ADR 006 has the figures)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "service": self._service,
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        # Extras may be keyed by enums or numbers (e.g. counts per status): a log line must
        # never fail to render.
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()

    def _timestamp(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the seconds part is formatted once per second."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"


class RequestIdFilter(logging.Filter):
    """Stamps the current request's ID (if any) on every record logged while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None:
            record.request_id = request_id
        return True


def logging_config(
    service: str, level: str, filters: dict[str, str], stream: str = "stdout"
) -> dict[str, Any]:
    """A `logging.config.dictConfig` mapping: root and uvicorn loggers to `stream` ("stdout" or
    "stderr") as JSON.

    `filters` maps a name to the dotted path of a `logging.Filter` subclass that adds context.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {name: {"()": path} for name, path in filters.items()},
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter", "service": service}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "stream": f"ext://sys.{stream}",
                "formatter": "json",
                "filters": list(filters),
            }
        },
        "root": {"handlers": ["json"], "level": level},
        # uvicorn installs its own handlers unless told otherwise: route them through root.
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": level}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(
    service: str, level: str, filters: dict[str, str] | None = None, stream: str = "stdout"
) -> None:
    """JSON logging for this process (see also `apply_process_settings`)."""
    logging.config.dictConfig(logging_config(service, level, filters or {}, stream))
    apply_process_settings()


def apply_process_settings() -> None:
    """What a logging configuration cannot say: Python warnings become log lines, and records
    skip the fields Forge's lines never carry (thread, multiprocessing process name, asyncio
    task), with the switches the logging HOWTO documents for this ("Optimization")."""
    logging.captureWarnings(True)
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # 3.12+, not in typeshed
