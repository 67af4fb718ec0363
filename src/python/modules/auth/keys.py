"""API keys: random, shown once when created, stored as a SHA-256 hash, named by a public prefix.

Like modules.jobs, the functions take a synchronous `Session` and never commit: the caller owns
the transaction (the api calls them through `AsyncSession.run_sync`)."""

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from modules.persistence.models import ApiKey

# A key reads `fk_<8 public characters>_<43 secret characters>`; the first 11 are its prefix.
# The secret is 32 random bytes (256 bits), base64url: no guess or brute force reaches it, which
# is why one fast SHA-256 (and no salt or slow KDF) is the right hash.
KEY_START = "fk_"
_PUBLIC_LENGTH = 8
_PUBLIC_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_BYTES = 32
PREFIX_LENGTH = len(KEY_START) + _PUBLIC_LENGTH
_KEY = re.compile(r"fk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}")
# last_used_at is written when it is older than this: not one write per request.
LAST_USED_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the owner whose jobs the caller may see, and the key's prefix (for logs)."""

    owner: str
    key_prefix: str


@dataclass(frozen=True)
class NewKey:
    key: str  # the only time it exists outside the caller's hands: print it once
    row: ApiKey


class KeyRefused(Exception):
    """The presented key is malformed, unknown or revoked; the message never holds the key."""


def generate() -> str:
    public = "".join(secrets.choice(_PUBLIC_ALPHABET) for _ in range(_PUBLIC_LENGTH))
    return f"{KEY_START}{public}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def is_well_formed(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session: Session, *, name: str, owner: str) -> NewKey:
    key = generate()
    row = ApiKey(prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key), name=name, owner=owner)
    session.add(row)
    session.flush()
    return NewKey(key, row)


def all_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.prefix)).all()


def revoke(session: Session, prefix: str) -> ApiKey | None:
    """Revoke the key (a second revoke keeps the first time); None when there is no such key."""
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix).with_for_update())
    if row is not None and row.revoked_at is None:
        row.revoked_at = session.scalar(select(func.now()))
    return row


# Whether the key's last use is older than LAST_USED_PRECISION, by the server's clock. The
# update asks again: concurrent verifications write it once.
_stale = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < func.now() - LAST_USED_PRECISION)


def verify(session: Session, key: str) -> Principal:
    """The principal `key` stands for; raises KeyRefused. Records the use (at most once per
    LAST_USED_PRECISION), so the caller commits."""
    if not is_well_formed(key):
        raise KeyRefused("malformed key")
    prefix = key[:PREFIX_LENGTH]
    row = session.execute(
        select(
            ApiKey.id, ApiKey.key_hash, ApiKey.owner, ApiKey.revoked_at, _stale.label("stale")
        ).where(ApiKey.prefix == prefix)
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        raise KeyRefused(f"unknown key {prefix}")
    if row.revoked_at is not None:
        raise KeyRefused(f"revoked key {prefix}")
    if row.stale:  # most verifications find the use recorded recently: no write
        session.execute(
            update(ApiKey).where(ApiKey.id == row.id, _stale).values(last_used_at=func.now())
        )
    return Principal(row.owner, prefix)
