"""modules.client against the real api process, Celery worker and S3 server: both clients submit,
wait, follow (through a connection that is cut) and download with their checksums verified."""

import hashlib
import uuid
from pathlib import Path

import pytest

from modules.client.aio import AsyncForgeClient
from modules.client.errors import ApiError, ApiUnreachable, ChecksumMismatch, ForgeError
from modules.client.sync import ForgeClient
from modules.contract.v1 import EventOut
from modules.persistence.statuses import JobStatus
from modules.settings import Settings
from modules.storage.s3 import make_s3_client
from modules.testing.network import closed_port
from modules.testing.proxy import faulty_proxy
from modules.testing.stack import ForgeStack

SMALL = {"width": 64, "height": 64}


def test_the_sync_client_follows_a_job_through_a_cut_and_downloads_it(
    forge_stack: ForgeStack, tmp_path: Path
) -> None:
    assert forge_stack.api is not None
    reconnects: list[tuple[int, ForgeError]] = []
    events: list[EventOut] = []
    cut_after = 0
    with (
        faulty_proxy("127.0.0.1", forge_stack.api.port) as proxy,
        ForgeClient(proxy.url, backoff_s=0.1, api_key=forge_stack.api_key) as forge,
    ):
        assert {"stub-image@1", "stub-icon@1"} <= {model.ref for model in forge.list_models()}
        assert forge.get_model("stub-image@1").task == "text-to-image"
        key = f"client-{uuid.uuid4()}"
        input = {"prompt": "followed", "step_duration_s": 0.5, **SMALL}
        job = forge.submit("stub-image", input, idempotency_key=key)
        assert forge.submit("stub-image", input, idempotency_key=key).id == job.id

        for event in forge.stream_events(
            job.id, on_reconnect=lambda after, error: reconnects.append((after, error))
        ):
            events.append(event)
            if event.type == "step.progress" and not cut_after:
                assert proxy.sever() == 1  # mid-job
                cut_after = event.seq
        done = forge.get_job(job.id)
        downloads = forge.download_artifacts(job.id, tmp_path / "out")

    # One reconnect, after what had arrived (events already on their way may follow the cut).
    assert len(reconnects) == 1
    assert reconnects[0][0] >= cut_after
    assert isinstance(reconnects[0][1], ApiUnreachable)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "job.succeeded"
    assert done.status == JobStatus.SUCCEEDED
    assert sorted(download.path.name for download in downloads) == ["image.png", "manifest.json"]
    for download in downloads:
        assert hashlib.sha256(download.path.read_bytes()).hexdigest() == download.artifact.sha256


@pytest.mark.anyio()
async def test_the_async_client_waits_for_a_job_then_reads_and_downloads_it(
    forge_stack: ForgeStack, tmp_path: Path
) -> None:
    async with AsyncForgeClient(forge_stack.api_url, api_key=forge_stack.api_key) as forge:
        job = await forge.submit("stub-icon", {"prompt": "held"}, wait=30)
        assert job.status == JobStatus.SUCCEEDED  # held until it ended
        # An ended job's stream: every event, then the end.
        streamed = [event async for event in forge.stream_events(job.id)]
        assert [event.seq for event in streamed] == list(range(1, len(streamed) + 1))
        assert streamed[-1].type == "job.succeeded"
        page = await forge.events_page(job.id, after=2, limit=3)
        assert page.data == streamed[2:5]
        listed = await forge.list_jobs(model="stub-icon", limit=1)
        assert [listed_job.id for listed_job in listed.data] == [job.id]
        downloads = await forge.download_artifacts(job.id, tmp_path)
        assert (await forge.get_job(job.id, wait=5)).status == JobStatus.SUCCEEDED
    for download in downloads:
        assert hashlib.sha256(download.path.read_bytes()).hexdigest() == download.artifact.sha256


def test_a_download_that_does_not_match_its_checksum_leaves_no_file(
    forge_stack: ForgeStack, tmp_path: Path
) -> None:
    with ForgeClient(forge_stack.api_url, api_key=forge_stack.api_key) as forge:
        job = forge.submit("stub-image", {"prompt": "tampered", **SMALL}, wait=30)
        image = next(artifact for artifact in job.output if artifact.name == "image.png")
        key = f"jobs/{job.id}/{image.step}/image.png"
        s3 = make_s3_client(
            Settings.model_validate({"s3_endpoint_url": forge_stack.s3_endpoint_url})
        )
        s3.put_object(Bucket=forge_stack.bucket, Key=key, Body=b"not the image")
        with pytest.raises(ChecksumMismatch) as raised:
            forge.download_artifacts(job.id, tmp_path)
    assert raised.value.name == "image.png"
    assert raised.value.actual == hashlib.sha256(b"not the image").hexdigest()
    assert list(tmp_path.iterdir()) == []  # image.png comes first: not even a partial file


def test_errors_are_one_line_each(forge_stack: ForgeStack) -> None:
    with ForgeClient(forge_stack.api_url, api_key=forge_stack.api_key) as forge:
        with pytest.raises(ApiError) as missing:
            forge.get_job(uuid.uuid4())
        with pytest.raises(ApiError) as invalid:
            forge.submit("stub-image", {"prompt": "bad", "seed": -1})
    assert missing.value.status == 404
    assert str(missing.value).startswith("404 Not Found: No job ")
    assert invalid.value.status == 422
    assert "/input/seed: -1 is less than the minimum of 0" in str(invalid.value)
    assert "\n" not in str(missing.value) + str(invalid.value)

    with ForgeClient(f"http://127.0.0.1:{closed_port()}", reconnects=1, backoff_s=0.1) as forge:
        with pytest.raises(ApiUnreachable, match="cannot reach http://127.0.0.1:"):
            forge.list_models()
        with pytest.raises(ApiUnreachable):
            list(forge.stream_events(uuid.uuid4()))
