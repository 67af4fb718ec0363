"""Probing the Celery broker (Redis) for readiness, from the api and from the worker."""

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def broker_probe_client(url: str, timeout_s: float) -> Redis:
    """An asyncio Redis client whose every call is one attempt bounded by `timeout_s`: a probe
    must report the broker as it is, not retry until it looks healthy."""
    return Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


async def ping_broker(client: Redis) -> None:
    await client.ping()
