"""The packaged `forge` CLI (forge.pex, built by Pants for this test) as a subprocess against
the real api process, Celery worker and S3 server: its output, its exit statuses, and a
--follow that survives a cut connection."""

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modules.testing.network import closed_port
from modules.testing.proxy import faulty_proxy
from modules.testing.stack import ForgeStack

# Where Pants puts the package this test depends on (runtime_package_dependencies).
FORGE_PEX = Path("src.python.services.cli/forge.pex")
SMALL = ["-i", "width=64", "-i", "height=64"]

type Forge = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def environment(
    forge_stack: ForgeStack, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """FORGE_API_URL names the stack's api, FORGE_API_KEY its key; the PEX unpacks into a directory of this module's.
    What the test runner (itself a PEX) sets for its own interpreter is left out: forge.pex
    carries everything it imports."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PEX", "__PEX")) and name != "PYTHONPATH"
    }
    return {
        **inherited,
        "FORGE_API_URL": forge_stack.api_url,
        "FORGE_API_KEY": forge_stack.api_key,
        "PEX_ROOT": str(tmp_path_factory.mktemp("pex_root")),
    }


@pytest.fixture(scope="module")
def forge(environment: dict[str, str]) -> Forge:
    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(FORGE_PEX), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def test_submit_wait_succeeds_and_the_downloaded_image_matches_its_sha256(
    forge: Forge, forge_stack: ForgeStack, tmp_path: Path
) -> None:
    submitted = forge("jobs", "submit", "stub-image", "-i", "prompt=a red fox", *SMALL, "--wait")
    assert submitted.returncode == 0, submitted.stderr
    lines = submitted.stdout.splitlines()
    job_id = lines[0].split()[1]  # "job <id> (stub-image@1) submitted"
    assert "render: stored image.png" in "\n".join(lines)  # plain lines: stdout is no terminal
    assert lines[-1] == f"job {job_id} succeeded"

    downloaded = forge("artifacts", "download", job_id, "-o", str(tmp_path))
    assert downloaded.returncode == 0, downloaded.stderr
    with forge_stack.client() as client:
        artifacts = client.get(f"/v1/jobs/{job_id}/artifacts").raise_for_status().json()["data"]
    recorded = {artifact["name"]: artifact["sha256"] for artifact in artifacts}
    image = (tmp_path / "image.png").read_bytes()
    assert hashlib.sha256(image).hexdigest() == recorded["image.png"]
    assert image.startswith(b"\x89PNG")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["image.png", "manifest.json"]


def test_a_failing_job_exits_1_with_its_error_on_one_line(forge: Forge) -> None:
    failed = forge("jobs", "submit", "stub-image", "-i", "prompt=doomed", "-i", "fail_at_step=1")
    assert failed.returncode == 0  # submitted; without --wait that is all
    job_id = failed.stdout.split()[0]
    followed = forge("jobs", "events", job_id, "--follow")
    assert followed.returncode == 1
    assert followed.stdout.splitlines()[-1] == f"job {job_id} failed: failed at step 1 as requested"


def test_problems_print_as_one_line_with_the_exit_status_of_their_kind(forge: Forge) -> None:
    missing = forge("jobs", "get", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 2
    assert missing.stderr.startswith("forge: 404 Not Found: No job 00000000-")
    invalid = forge("jobs", "submit", "stub-image", "-i", "prompt=x", "-i", "seed=-1")
    assert invalid.returncode == 2
    assert "/input/seed: -1 is less than the minimum of 0" in invalid.stderr
    unreachable = forge("--api-url", f"http://127.0.0.1:{closed_port()}", "models", "list")
    assert unreachable.returncode == 69
    usage = forge("jobs", "submit")
    assert usage.returncode == 2
    for result in (missing, invalid, unreachable):
        assert result.stderr.count("\n") == 1, result.stderr


def test_json_output_parses(forge: Forge, tmp_path: Path) -> None:
    submitted = forge("--json", "jobs", "submit", "stub-icon", "-i", "prompt=machine", "--wait")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "succeeded"

    got = forge("jobs", "get", job["id"], "--json")
    assert json.loads(got.stdout)["id"] == job["id"]
    events = forge("jobs", "events", job["id"], "--json")
    seqs = [json.loads(line)["seq"] for line in events.stdout.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1))
    listed = json.loads(forge("jobs", "list", "--model", "stub-icon", "--json").stdout)
    assert job["id"] in [each["id"] for each in listed["data"]]
    models = json.loads(forge("models", "list", "--json").stdout)
    assert "stub-icon@1" in [model["ref"] for model in models]
    downloads = json.loads(
        forge("artifacts", "download", job["id"], "--json", "-o", str(tmp_path)).stdout
    )
    assert {download["name"] for download in downloads} == {"image.png", "manifest.json"}


def test_list_all_goes_page_after_page_to_the_oldest_job(forge: Forge) -> None:
    for prompt in ("first", "second", "third"):
        assert forge("jobs", "submit", "stub-icon", "-i", f"prompt={prompt}").returncode == 0
    one_page = forge("jobs", "list", "--limit", "100", "--json")
    newest_first = [job["id"] for job in json.loads(one_page.stdout)["data"]]
    assert len(newest_first) >= 3

    paged = json.loads(forge("jobs", "list", "--limit", "2", "--all", "--json").stdout)
    assert ([job["id"] for job in paged["data"]], paged["next"]) == (newest_first, None)

    first_only = forge("jobs", "list", "--limit", "2")
    assert first_only.returncode == 0
    rows = first_only.stdout.splitlines()[1:]  # after the header
    assert [row.split("\t")[0] for row in rows] == newest_first[:2]
    assert first_only.stderr == "forge: older jobs not shown; --all lists them (2 shown)\n"


def test_follow_resumes_after_its_connection_is_killed(
    forge_stack: ForgeStack, environment: dict[str, str]
) -> None:
    assert forge_stack.api is not None
    with forge_stack.client() as client:
        job = forge_stack.submit(
            client, prompt="followed", step_duration_s=0.5, width=64, height=64
        )
    with faulty_proxy("127.0.0.1", forge_stack.api.port) as proxy:
        follow = subprocess.Popen(
            [sys.executable, str(FORGE_PEX), "jobs", "events", job["id"], "--follow", "--json"],
            env={**environment, "FORGE_API_URL": proxy.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert follow.stdout is not None
        events: list[Any] = []
        for line in follow.stdout:
            events.append(json.loads(line))
            if events[-1]["type"] == "step.progress":
                assert proxy.sever() == 1  # mid-job
                break
        events += [json.loads(line) for line in follow.stdout]
        _, stderr = follow.communicate(timeout=60)
    assert follow.returncode == 0, stderr
    assert "resuming after event" in stderr
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "job.succeeded"


def test_a_canceled_job_exits_3(forge_stack: ForgeStack, environment: dict[str, str]) -> None:
    with forge_stack.client() as client:
        job = forge_stack.submit(client, prompt="canceled", step_duration_s=30)
        follow = subprocess.Popen(
            [sys.executable, str(FORGE_PEX), "jobs", "events", job["id"], "--follow"],
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        forge_stack.wait_for_job(client, job["id"], lambda job: job["status"] == "running")
        time.sleep(0.5)  # following by now
        client.post(job["urls"]["cancel"]).raise_for_status()
        stdout, _ = follow.communicate(timeout=60)
    assert follow.returncode == 3
    assert stdout.splitlines()[-1] == f"job {job['id']} canceled"
