"""Forge's api as `forge-api serve` runs it, with `authenticate` answering, without a key,
for the owner the request names in X-Bench-Owner (the benchmark's submitters take turns): next to
the real api in `make bench-jobs`, what verifying API keys costs.

Run: `python -m benchmarks.forge_without_auth` with the api's FORGE_* settings."""

from fastapi import Header

from modules.auth.keys import Principal
from services.api.app import app
from services.api.auth import authenticate
from services.api.main import serve


# Async as `authenticate` is: FastAPI runs a sync dependency in a thread, which would weigh on
# this side of the comparison alone.
async def _named_owner(x_bench_owner: str = Header()) -> Principal:
    return Principal(owner=x_bench_owner, key_prefix="none")


app.dependency_overrides[authenticate] = _named_owner

if __name__ == "__main__":
    raise SystemExit(serve("benchmarks.forge_without_auth:app"))
