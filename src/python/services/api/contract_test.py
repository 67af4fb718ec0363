"""Contract tests: every documented operation, called on a real server by schemathesis, answers
as the committed spec says (no 5xx, documented status codes, content types and bodies)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

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


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    s3_endpoint_url: str,
    redis_base_url: str,
) -> Iterator[ApiProcess]:
    # Healthy dependencies: /readyz answers 200 (a 503 counts as a server error here).
    env = {
        "FORGE_DATABASE_URL": database_url,
        "FORGE_BROKER_URL": f"{redis_base_url}/0",
        "FORGE_S3_ENDPOINT_URL": s3_endpoint_url,
        "FORGE_S3_BUCKET": "forge-contract",
    }
    settings = Settings.model_validate(
        {key.removeprefix("FORGE_").lower(): v for key, v in env.items()}
    )
    ensure_bucket(make_s3_client(settings), settings.s3_bucket)
    process = ApiProcess(Path(tmp_path_factory.mktemp("contract")), **env)
    yield process
    process.stop()


@schema.parametrize()
def test_operation_honours_the_contract(case: schemathesis.Case[Any], api: ApiProcess) -> None:
    case.call_and_validate(base_url=api.base_url, checks=CHECKS)
