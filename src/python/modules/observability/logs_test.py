import json
import logging
from enum import StrEnum

from modules.observability.logs import JsonFormatter


class Status(StrEnum):
    QUEUED = "queued"


def test_extras_keyed_by_enums_and_numbers_render_as_json() -> None:
    record = logging.LogRecord("forge.test", logging.INFO, __file__, 1, "passed", None, None)
    record.taken_back = {Status.QUEUED: 2, 7: "seven"}
    line = json.loads(JsonFormatter("worker").format(record))
    assert line["taken_back"] == {"queued": 2, "7": "seven"}
    assert (line["msg"], line["service"], line["level"]) == ("passed", "worker", "INFO")
