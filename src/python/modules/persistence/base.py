"""The declarative base every table derives from, and the column types it maps annotations to."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, MetaData, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, MappedAsDataclass

# Every constraint and index gets a deterministic name, so migrations can drop or alter it by
# name and tests (and the api) can tell which rule a row broke.
NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}

type JsonValue = str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]
type JsonObject = dict[str, JsonValue]


class Base(MappedAsDataclass, DeclarativeBase):
    """Rows are dataclasses, so their constructors are typed. Each table passes `kw_only=True`
    (mypy does not inherit it from here): columns keep their order whatever their defaults."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        datetime: DateTime(timezone=True),
        str: Text(),
        uuid.UUID: Uuid(),
    }
