"""Typed clients for Forge's /v1 API: `sync.ForgeClient` and `aio.AsyncForgeClient` (httpx),
speaking the bodies of modules.contract, following a job's events across dropped connections
and verifying every artifact it downloads."""
