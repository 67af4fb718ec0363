"""What Forge's PostgreSQL LISTEN connections (the api's event notifier, the reconciler's
dispatcher) share: how soon they reconnect after losing the connection, and how they name the
error that lost it."""

# The first retry soon, then doubling up to MAX_RETRY_S: a restarting PostgreSQL is back within
# seconds, and a long outage should not see a connection attempt every second.
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 8.0


def next_retry_s(retry_s: float) -> float:
    return min(retry_s * 2, MAX_RETRY_S)


def reason(error: BaseException) -> str:
    """The error on one line (libpq's messages span several), or its type if it says nothing."""
    return " ".join(str(error).split()) or type(error).__name__
