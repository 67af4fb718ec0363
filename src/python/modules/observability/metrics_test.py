import os

import pytest
from prometheus_client import Counter, values

from modules.observability.metrics import (
    MULTIPROC_ENV,
    remove_multiprocess_dir,
    render_latest,
    use_multiprocess_dir,
)


def test_metrics_created_after_use_multiprocess_dir_are_multiprocess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Undone after the test: the variable and the storage prometheus-client chose at import.
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)

    directory = use_multiprocess_dir("metrics-test")
    try:
        Counter("forge_test_events_total", "Events.", registry=None).inc(3)
        assert os.listdir(directory) == [f"counter_{os.getpid()}.db"]
        assert b"forge_test_events_total 3.0" in render_latest()[0]
    finally:
        remove_multiprocess_dir(directory)
