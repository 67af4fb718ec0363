from pathlib import Path

import pytest

from modules.observability.probe import main
from modules.testing.network import closed_port
from services.api.testing import ApiProcess


def test_probe_passes_when_healthz_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = ApiProcess(
        tmp_path,
        FORGE_READINESS_DATABASE="false",
        FORGE_READINESS_STORAGE="off",
    )
    try:
        monkeypatch.setenv("FORGE_API_PORT", str(api.port))
        assert main(["api"]) == 0
    finally:
        api.stop()


def test_probe_fails_with_the_reason_when_nothing_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    monkeypatch.setenv("FORGE_WORKER_METRICS_PORT", str(port))
    assert main(["worker"]) == 1
    assert f"http://127.0.0.1:{port}/healthz" in capsys.readouterr().err


def test_probe_ready_fails_with_the_status_when_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Alive, but PostgreSQL is on a closed port: /healthz passes, /readyz does not.
    api = ApiProcess(
        tmp_path,
        FORGE_DATABASE_URL=f"postgresql+psycopg://forge@127.0.0.1:{closed_port()}/forge",
        FORGE_READINESS_STORAGE="off",
    )
    try:
        monkeypatch.setenv("FORGE_API_PORT", str(api.port))
        assert main(["api"]) == 0
        assert main(["api", "--ready"]) == 1
    finally:
        api.stop()
    assert "/readyz: 503 Service Unavailable" in capsys.readouterr().err


def test_probe_rejects_unknown_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["database"]) == 2
    assert "usage" in capsys.readouterr().err
