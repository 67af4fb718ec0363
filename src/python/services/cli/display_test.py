from datetime import UTC, datetime

import pytest

from modules.contract.v1 import EventOut, JsonObject
from services.cli.display import describe


@pytest.mark.parametrize(
    ("type", "payload", "line"),
    [
        ("job.queued", {"status": "queued"}, "job queued"),
        ("job.started", {"attempt": 2, "worker": "w"}, "job started (attempt 2)"),
        ("step.started", {"step": "render", "position": 1}, "render: started"),
        (
            "step.progress",
            {"step": "render", "fraction": 0.5, "message": "drawing"},
            "render: 50% drawing",
        ),
        ("step.log", {"step": "prepare", "message": "3 shapes"}, "prepare: 3 shapes"),
        (
            "artifact.stored",
            {
                "step": "render",
                "name": "image.png",
                "size_bytes": 1234,
                "content_type": "image/png",
            },
            "render: stored image.png (1234 bytes, image/png)",
        ),
        ("step.succeeded", {"step": "render", "seconds": 0.25}, "render: succeeded in 0.25 s"),
        (
            "step.failed",
            {"step": "render", "error": {"type": "step_failed", "message": "failed at step 1"}},
            "render: failed: failed at step 1",
        ),
        (
            "job.failed",
            {"status": "failed", "error": {"type": "x", "message": "failed at step 1"}},
            "job failed: failed at step 1",
        ),
        ("job.canceled", {"status": "canceled"}, "job canceled"),
        ("something.new", {"a": 1}, 'something.new {"a": 1}'),
    ],
)
def test_each_event_is_one_line_for_a_person(type: str, payload: JsonObject, line: str) -> None:
    event = EventOut(seq=1, type=type, payload=payload, created_at=datetime.now(UTC))
    assert describe(event) == line
