"""Who is calling: the API key in `Authorization: Bearer` on every /v1 request, verified against
PostgreSQL and then trusted for FORGE_API_KEY_CACHE_S (docs/adrs/013-api-keys.md)."""

import hashlib
import logging
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modules.auth.keys import KeyRefused, Principal, verify

logger = logging.getLogger(__name__)

bearer = HTTPBearer(
    scheme_name="apiKey",
    bearerFormat="fk_<prefix>_<secret>",
    description="An API key: `forge-api keys create --name NAME` makes one.",
    auto_error=False,
)


class KeyCache:
    """Verified keys of this process, by the SHA-256 of the key (never the key itself), each
    trusted for `ttl_s`: a cached request costs no query. Refusals are not cached."""

    MAX_ENTRIES = 10_000  # beyond, it starts afresh: a bound, not an eviction policy

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if time.monotonic() >= entry[0]:
            del self._entries[digest]
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self.ttl_s, principal)


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    # RFC 6750: no error code when credentials are missing, invalid_token when they are bad.
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise _unauthorized("Send an API key: `Authorization: Bearer <key>`.")
    key = credentials.credentials
    cache: KeyCache = request.app.state.keys
    digest = hashlib.sha256(key.encode()).hexdigest()
    principal = cache.get(digest)
    if principal is None:
        # A session of its own, ended here: the route's session and transaction stay the
        # route's (a held or streaming request closes its own while it waits).
        sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
        async with sessions() as session:
            try:
                principal = await session.run_sync(verify, key)
            except KeyRefused as refused:
                logger.info("refused %s", refused)  # the reason and prefix, never the key
                raise _unauthorized(
                    "The API key is malformed, unknown or revoked.", "invalid_token"
                ) from None
            await session.commit()  # its last_used_at
        cache.put(digest, principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
