"""Sync the catalog into the `models` table: insert what is missing, leave what is identical,
refuse what differs. Jobs name a model row, so a row that changed under them would make their
input, output and history mean something else: a change is published as a new version."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from modules.catalog.loading import CatalogModel, load_catalog
from modules.persistence.models import Model

# What a catalog entry says about a model besides its (name, version).
_CONTENT = ("task", "runner", "description", "input_schema", "default_parameters")


class ModelChanged(Exception):
    """A (name, version) in the database differs from the catalog; str() is one line."""

    def __init__(self, changes: dict[str, list[str]]) -> None:
        self.changes = changes  # model ref -> the fields that differ
        described = ", ".join(f"{ref} ({', '.join(keys)})" for ref, keys in changes.items())
        super().__init__(
            f"{described} differ from the catalog: a model is never edited in place; "
            "publish a new version instead"
        )


@dataclass(frozen=True)
class SyncSummary:
    inserted: tuple[str, ...]  # model refs, name@version
    unchanged: tuple[str, ...]

    def __str__(self) -> str:
        inserted = f" ({', '.join(self.inserted)})" if self.inserted else ""
        return f"{len(self.inserted)} inserted{inserted}, {len(self.unchanged)} unchanged"


def sync(session: Session, catalog: Sequence[CatalogModel] | None = None) -> SyncSummary:
    """Bring the catalog (models.json unless given) into `models`, in a SAVEPOINT: a refused
    sync writes nothing. The caller commits. Concurrent syncs are safe: an insert that meets
    another's row compares with it instead."""
    models = load_catalog() if catalog is None else catalog
    if not models:
        return SyncSummary(inserted=(), unchanged=())
    with session.begin_nested():
        rows = session.execute(
            insert(Model)
            .values([_row(model) for model in models])
            .on_conflict_do_nothing(index_elements=[Model.name, Model.version])
            .returning(Model.name, Model.version)
        )
        inserted = {tuple(row) for row in rows}
        keys = [(model.name, model.version) for model in models]
        stored = {
            (row.name, row.version): row
            for row in session.scalars(
                select(Model)
                .where(tuple_(Model.name, Model.version).in_(keys))
                .execution_options(populate_existing=True)
            )
        }
        changes = {
            model.ref: differing
            for model in models
            if (differing := _differing(model, stored[model.name, model.version]))
        }
        if changes:
            raise ModelChanged(changes)
    return SyncSummary(
        inserted=tuple(model.ref for model in models if (model.name, model.version) in inserted),
        unchanged=tuple(
            model.ref for model in models if (model.name, model.version) not in inserted
        ),
    )


def _row(model: CatalogModel) -> dict[str, object]:
    return {"name": model.name, "version": model.version} | {
        key: getattr(model, key) for key in _CONTENT
    }


def _differing(model: CatalogModel, row: Model) -> list[str]:
    return [key for key in _CONTENT if getattr(model, key) != getattr(row, key)]
