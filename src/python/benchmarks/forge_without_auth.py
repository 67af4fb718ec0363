"""Forge's api as `forge-api serve` runs it, with `authenticate` answering for the benchmark's
owner without a key: next to the real api in `make bench-jobs`, what verifying API keys costs.

Run: `python -m benchmarks.forge_without_auth` with the api's FORGE_* settings."""

from benchmarks.bare_apps import OWNER
from modules.auth.keys import Principal
from services.api.app import app
from services.api.auth import authenticate
from services.api.main import serve

app.dependency_overrides[authenticate] = lambda: Principal(owner=OWNER, key_prefix="none")

if __name__ == "__main__":
    raise SystemExit(serve("benchmarks.forge_without_auth:app"))
