"""JSON logging shared by every Forge process: one JSON object per line on stdout.

Context (a request ID, a Celery task) reaches log lines through logging filters that copy it
onto each record; the formatter writes every such attribute. `logging_config()` returns a
`dictConfig` mapping so that uvicorn can apply the same setup in each worker process it spawns.
"""

import json
import logging
import logging.config
import time
import traceback
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
# (uvicorn adds color_message for its own formatter.)
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)))
_STANDARD_ATTRIBUTES |= {"message", "asctime", "color_message", "taskName"}


def _skip_unused_record_fields() -> None:
    """Forge's lines carry none of the caller's file/line/function, thread or asyncio task:
    not collecting them saves a stack walk and two lookups on every record (the api writes
    one per request). `_srcfile = None` is the switch the logging module documents for this."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # 3.12+, not in typeshed


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON line: time, level, logger, message, service, pid, context."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._encode = json.JSONEncoder(default=str).encode
        self._second = -1
        self._second_text = ""
        # Done here because dictConfig cannot, and every process that logs JSON (uvicorn's
        # workers included) builds this formatter: `warnings` become JSON lines too.
        logging.captureWarnings(True)
        _skip_unused_record_fields()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "service": self._service,
            "pid": record.process,
        }
        attributes = record.__dict__
        for key in attributes.keys() - _STANDARD_ATTRIBUTES:
            if attributes[key] is not None:
                entry[key] = attributes[key]
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return self._encode(entry)

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


def logging_config(service: str, level: str, filters: dict[str, str]) -> dict[str, Any]:
    """A `logging.config.dictConfig` mapping: root and uvicorn loggers to stdout as JSON.

    `filters` maps a name to the dotted path of a `logging.Filter` subclass that adds context.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {name: {"()": path} for name, path in filters.items()},
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter", "service": service}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": list(filters),
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        # uvicorn installs its own handlers unless told otherwise: route them through root.
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": level}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(service: str, level: str, filters: dict[str, str]) -> None:
    logging.config.dictConfig(logging_config(service, level, filters))
