"""Contract tests: every documented operation, called on a real server by schemathesis with an
API key, answers as the committed spec says (no 5xx, documented status codes, content types and
bodies); without a key, every /v1 operation answers 401."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine, delete
from sqlalchemy.orm import Session

from modules.auth import keys
from modules.catalog.sync import sync
from modules.persistence.models import Job
from modules.settings import Settings
from modules.storage.s3 import ensure_bucket, make_s3_client
from services.api.openapi_export import DEFAULT_OUT
from services.api.testing import ApiProcess

# The committed document is the contract, not whatever the server happens to serve.
schema = schemathesis.openapi.from_path(DEFAULT_OUT)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


class Api(ApiProcess):
    key: str  # an API key of the process's database

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    s3_endpoint_url: str,
) -> Iterator[Api]:
    # Healthy dependencies: /readyz answers 200 (a 503 counts as a server error here).
    env = {
        "FORGE_DATABASE_URL": database_url,
        "FORGE_S3_ENDPOINT_URL": s3_endpoint_url,
        "FORGE_S3_BUCKET": "forge-contract",
        # Nothing runs the jobs: a queue cap would turn later submissions into 429s, so the
        # same generated sequence would meet other answers when replayed.
        "FORGE_JOB_MAX_QUEUED_PER_OWNER": "1000000",
    }
    settings = Settings.model_validate(
        {key.removeprefix("FORGE_").lower(): v for key, v in env.items()}
    )
    ensure_bucket(make_s3_client(settings), settings.s3_bucket)
    engine = create_engine(database_url)
    with Session(engine) as session, session.begin():
        sync(session)  # the catalog's models, so some submissions succeed
        key = keys.create(session, name="contract", owner=f"contract-{uuid.uuid4().hex}").key
    engine.dispose()
    process = Api(Path(tmp_path_factory.mktemp("contract")), **env)
    process.key = key
    yield process
    process.stop()


@schema.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    """Every other generated submission names a catalog model with a valid input, so the tests
    reach real jobs (202), and the workflows get, cancel and read them."""
    operation = context.operation
    if operation is None or operation.label != "POST /v1/jobs" or not isinstance(body, dict):
        return body
    if len(repr(body)) % 2:
        return body
    return {"model": "stub-image@1", "input": {"prompt": "contract", "step_duration_s": 0}}


# Framing headers belong to HTTP, not to Forge's contract: a generated `Content-Length: Om&9r4^`
# is refused by uvicorn's parser ("Invalid HTTP request received.", text/plain) before the app.
HTTP_FRAMING = {"content-length", "transfer-encoding", "host", "connection"}


@schema.hook
def map_headers(context: schemathesis.HookContext, headers: Any) -> Any:
    """No `Prefer: wait`: nothing runs jobs here, so every such request would be held up to a
    minute (following_test.py tests waiting). No generated framing headers (HTTP_FRAMING)."""
    if isinstance(headers, dict):
        headers.pop("Prefer", None)
        for name in [name for name in headers if name.lower() in HTTP_FRAMING]:
            del headers[name]
    return headers


@schema.parametrize()
def test_operation_honours_the_contract(case: schemathesis.Case[Any], api: Api) -> None:
    case.call_and_validate(base_url=api.base_url, headers=api.auth, checks=CHECKS)


V1_OPERATIONS = [
    (method.upper(), path)
    for path, item in json.loads(Path(DEFAULT_OUT).read_text())["paths"].items()
    if path.startswith("/v1/")
    for method in item
]


@pytest.mark.parametrize(("method", "path"), V1_OPERATIONS)
def test_every_v1_operation_needs_a_key(method: str, path: str, api: Api) -> None:
    url = api.base_url + path.format(job_id=uuid.uuid4(), name="stub-image")
    for headers, challenge in [
        ({}, "Bearer"),
        ({"Authorization": f"Bearer {keys.generate()}"}, 'Bearer error="invalid_token"'),
    ]:
        response = httpx.request(method, url, headers=headers, json={})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == challenge
        assert response.headers["content-type"] == "application/problem+json"


class JobWorkflows(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences that follow the spec's links: create -> get -> cancel -> events, artifacts."""

    base_url: str
    headers: dict[str, str]
    database_url: str

    def setup(self) -> None:
        """Every sequence starts from no jobs: one that met the jobs (and idempotency keys) of
        earlier ones would take other transitions when Hypothesis replays it."""
        engine = create_engine(self.database_url)
        with engine.begin() as connection:
            connection.execute(delete(Job))
        engine.dispose()

    def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
        return {"base_url": self.base_url, "headers": self.headers}

    def validate_response(
        self, response: Any, case: schemathesis.Case[Any], *args: Any, **kwargs: Any
    ) -> None:
        case.validate_response(response, checks=CHECKS)


def test_job_workflows_honour_the_contract(api: Api, database_url: str) -> None:
    JobWorkflows.base_url, JobWorkflows.headers = api.base_url, api.auth
    JobWorkflows.database_url = database_url
    JobWorkflows.run(
        settings=hypothesis.settings(
            max_examples=40,
            deadline=None,
            stateful_step_count=6,
            derandomize=True,
            # Responses carry new job ids, so a replay cannot draw the same data: report the
            # failure as found instead of shrinking it.
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
    )
