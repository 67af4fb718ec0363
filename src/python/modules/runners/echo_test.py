"""The echo runner through an in-memory StepContext."""

import json

import pytest

from modules.runners.base import StepCanceled
from modules.runners.echo import OUTPUT, EchoRunner
from modules.testing.step_context import RecordingContext, run_plan


def test_one_step_stores_the_input_as_canonical_json() -> None:
    context = run_plan(EchoRunner(), {"message": "héllo", "a": [1, None]})
    assert list(context.artifacts) == [OUTPUT]
    stored = context.artifacts[OUTPUT]
    assert (stored.step, stored.content_type) == ("echo", "application/json")
    assert stored.data == '{"a":[1,null],"message":"héllo"}'.encode()
    assert json.loads(stored.data) == {"message": "héllo", "a": [1, None]}
    assert (context.progress_reports, context.logs) == ([], [])


def test_a_canceled_step_stores_nothing() -> None:
    context = RecordingContext()
    context.request_cancel()
    with pytest.raises(StepCanceled):
        run_plan(EchoRunner(), {"message": "x"}, context)
    assert context.artifacts == {}
