"""Request IDs: accept a client's `X-Request-ID` only when it is a sane token, else mint one."""

import os
import re

HEADER = "x-request-id"
MAX_LENGTH = 128
# Visible ASCII that is safe in headers, log lines and URLs: no spaces, quotes or separators.
_SAFE_TOKEN = re.compile(rb"[A-Za-z0-9._:@+=-]{1,%d}" % MAX_LENGTH)


def new_request_id() -> str:
    # 128 random bits as 32 hex digits (a UUID4's entropy without building a UUID object).
    return os.urandom(16).hex()


def accept_or_new(raw: bytes | None) -> str:
    """The client's ID when it is 1-128 safe characters, otherwise a fresh one.

    Takes raw header bytes: ASGI headers are bytes and hostile values (newlines, non-ASCII)
    must be judged before any decoding.
    """
    if raw is not None and _SAFE_TOKEN.fullmatch(raw):
        return raw.decode("ascii")
    return new_request_id()
