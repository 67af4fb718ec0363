"""JSON logging shared by every Forge process: one JSON object per line on stdout.

Context (a request ID, a Celery task) reaches log lines through logging filters that copy it
onto each record; the formatter writes every such attribute. `logging_config()` returns a
`dictConfig` mapping so that uvicorn can apply the same setup in each worker process it spawns
(the app captures warnings there, see services.api.app); other processes call
`configure_logging()`.
"""

import logging
import logging.config
import time
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(OrjsonFormatter):
    """python-json-logger's formatter, encoding with orjson: `ts` (UTC, ms), `level`,
    `logger`, `msg`, `pid`, `service`, every attribute a filter or `extra=` added, and
    `exc_type` and `traceback` for exceptions."""

    def __init__(self, service: str) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            rename_fields={
                "asctime": "ts",
                "levelname": "level",
                "name": "logger",
                "message": "msg",
                "process": "pid",
                "exc_info": "traceback",
            },
            static_fields={"service": service},
            # uvicorn adds color_message for its own formatter.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 UTC with milliseconds; the seconds part is formatted once per second."""
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((record.created - second) * 1000):03d}Z"

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if record.exc_info and record.exc_info[0] is not None:
            log_data["exc_type"] = record.exc_info[0].__name__


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
    """JSON logging for this process, Python warnings included."""
    logging.config.dictConfig(logging_config(service, level, filters or {}, stream))
    logging.captureWarnings(True)
