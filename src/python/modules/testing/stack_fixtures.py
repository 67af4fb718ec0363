"""The end-to-end fixture: `forge_stack`, the api, a worker and the reconciler as real processes
(modules.testing.stack), one stack per test module. A package's conftest.py imports these names.

The database is `forge_e2e_<slot>`, set up as Compose sets up its own (two roles, migrated by the
owner, the services connecting as the application role); Redis is a private server, so a test
may stop it; the S3 server is the session's.
"""

from collections.abc import Iterator

import pytest
from sqlalchemy import make_url

from modules.testing.isolation import execution_slot
from modules.testing.roles import database_with_roles
from modules.testing.servers import PrivateRedis, private_redis
from modules.testing.stack import ForgeStack


@pytest.fixture(scope="module")
def stack_redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def stack_database_url(postgres_admin_url: str) -> Iterator[str]:
    """The application role's URL of a migrated database with Forge's two roles."""
    name = f"forge_e2e_{execution_slot()}"
    with database_with_roles(postgres_admin_url, name) as (_, app_url):
        yield app_url


@pytest.fixture(scope="module")
def forge_stack(
    tmp_path_factory: pytest.TempPathFactory,
    stack_database_url: str,
    stack_redis: PrivateRedis,
    s3_endpoint_url: str,
) -> Iterator[ForgeStack]:
    database = make_url(stack_database_url).database
    stack = ForgeStack(
        tmp_path_factory.mktemp("stack"),
        database_url=stack_database_url,
        redis=stack_redis,
        s3_endpoint_url=s3_endpoint_url,
        bucket=f"forge-e2e-{database}".replace("_", "-"),
    )
    stack.prepare()
    stack.start()  # stops what it started if it fails
    try:
        yield stack
    finally:
        stack.stop()
