"""`forge-api keys` as a real process, and a real api process using the keys it makes: the key
is printed once, on the last line of stdout, and never written to a log."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from modules.auth.keys import PREFIX_LENGTH, is_well_formed
from modules.persistence.migrate import EXIT_UNAVAILABLE
from modules.testing.network import closed_port
from modules.testing.processes import python_subprocess_env
from services.api.testing import ApiProcess


@pytest.fixture()
def empty_keys(database_url: str) -> str:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE api_keys"))
    engine.dispose()
    return database_url


def keys_command(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.api.main", "keys", *args],
        env=python_subprocess_env(FORGE_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_create_list_revoke_and_the_logs_never_hold_the_key(
    empty_keys: str, tmp_path: Path
) -> None:
    created = keys_command(empty_keys, "create", "--name", "ci", "--owner", "team-a")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]
    assert is_well_formed(key)
    prefix = key[:PREFIX_LENGTH]

    listed = keys_command(empty_keys, "list")
    assert listed.returncode == 0, listed.stderr
    (row,) = listed.stdout.splitlines()[1:]
    assert row.split("\t")[:3] == [prefix, "ci", "team-a"]
    assert row.endswith("\t-\t-")  # never used, not revoked

    api = ApiProcess(
        tmp_path,
        FORGE_DATABASE_URL=empty_keys,
        FORGE_API_KEY_CACHE_S="0",
        FORGE_READINESS_STORAGE="off",
        FORGE_LOG_LEVEL="DEBUG",
    )
    try:
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{api.base_url}/v1/models", headers=auth).status_code == 200
        revoked = keys_command(empty_keys, "revoke", prefix)
        assert revoked.returncode == 0, revoked.stderr
        assert httpx.get(f"{api.base_url}/v1/models", headers=auth).status_code == 401
    finally:
        api.stop()
    used = keys_command(empty_keys, "list").stdout.splitlines()[1].split("\t")
    assert used[4] != "-"  # last used
    assert used[5] != "-"  # revoked

    logs = api.log_path.read_text() + created.stderr + listed.stderr + revoked.stderr
    assert prefix in logs
    assert key[PREFIX_LENGTH + 1 :] not in logs
    assert key not in created.stderr + created.stdout.splitlines()[0]


def test_revoking_an_unknown_prefix_fails(empty_keys: str) -> None:
    result = keys_command(empty_keys, "revoke", "fk_00000000")
    assert result.returncode == 1
    assert "no key fk_00000000" in result.stderr


def test_ensure_writes_a_key_once_and_replaces_a_revoked_one(
    empty_keys: str, tmp_path: Path
) -> None:
    path = tmp_path / "development.key"
    ensure = ("ensure", "--name", "development", "--file", str(path))
    assert keys_command(empty_keys, *ensure).returncode == 0
    key = path.read_text().strip()
    assert is_well_formed(key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys_command(empty_keys, *ensure).returncode == 0
    assert path.read_text().strip() == key  # idempotent
    assert keys_command(empty_keys, "revoke", key[:PREFIX_LENGTH]).returncode == 0
    assert keys_command(empty_keys, *ensure).returncode == 0
    assert path.read_text().strip() != key


def test_no_database_exits_unavailable() -> None:
    url = f"postgresql+psycopg://forge@127.0.0.1:{closed_port()}/forge"
    result = keys_command(url, "list")
    assert result.returncode == EXIT_UNAVAILABLE
    assert "cannot connect to PostgreSQL" in result.stderr
