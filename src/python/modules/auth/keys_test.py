from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from modules.auth import keys
from modules.persistence.models import ApiKey


@pytest.fixture()
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE api_keys"))
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def test_keys_are_random_and_well_formed() -> None:
    generated = {keys.generate() for _ in range(100)}
    assert len(generated) == 100
    assert all(keys.is_well_formed(key) for key in generated)
    assert {len(key) for key in generated} == {keys.PREFIX_LENGTH + 1 + 43}


def test_only_the_hash_is_stored_and_only_the_key_verifies(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session, session.begin():
        new = keys.create(session, name="ci", owner="team-a")
    with sessions() as session, session.begin():
        row = session.scalars(select(ApiKey)).one()
        assert (row.prefix, row.key_hash) == (new.key[: keys.PREFIX_LENGTH], keys.hash_key(new.key))
        assert new.key not in repr(row.__dict__)
        assert keys.verify(session, new.key) == keys.Principal("team-a", row.prefix)
    wrong_secret = new.key[:-1] + ("A" if new.key[-1] != "A" else "B")
    for presented, reason in [
        ("", "malformed key"),
        (new.key + "x", "malformed key"),
        (wrong_secret, f"unknown key {row.prefix}"),
        (keys.generate(), "unknown key"),
    ]:
        with sessions() as session, pytest.raises(keys.KeyRefused, match=reason) as refused:
            keys.verify(session, presented)
        assert new.key[keys.PREFIX_LENGTH + 1 :] not in str(refused.value)


def test_a_revoked_key_is_refused_and_revoking_again_keeps_the_time(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session, session.begin():
        new = keys.create(session, name="ci", owner="team-a")
    prefix = new.key[: keys.PREFIX_LENGTH]
    with sessions() as session, session.begin():
        first = keys.revoke(session, prefix)
        assert first is not None
        assert first.revoked_at is not None
    with sessions() as session, session.begin():
        again = keys.revoke(session, prefix)
        assert again is not None
        assert again.revoked_at == first.revoked_at
        assert keys.revoke(session, "fk_00000000") is None
    with sessions() as session, pytest.raises(keys.KeyRefused, match=f"revoked key {prefix}"):
        keys.verify(session, new.key)
