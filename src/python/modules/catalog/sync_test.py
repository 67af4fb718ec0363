"""sync() against real PostgreSQL, in a transaction rolled back after each test."""

import dataclasses

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from modules.catalog.loading import load_catalog
from modules.catalog.sync import ModelChanged, sync
from modules.persistence.models import Model

CATALOG = load_catalog()


def stored(session: Session) -> dict[str, Model]:
    return {f"{row.name}@{row.version}": row for row in session.scalars(select(Model))}


def test_a_second_sync_inserts_nothing(sync_session: Session) -> None:
    first = sync(sync_session)
    assert (len(first.inserted), len(first.unchanged)) == (4, 0)
    assert str(first) == (
        "4 inserted (stub-image@1, stub-icon@1, stub-image@2, echo@1), 0 unchanged"
    )
    second = sync(sync_session)
    assert (second.inserted, second.unchanged) == (
        (),
        ("stub-image@1", "stub-icon@1", "stub-image@2", "echo@1"),
    )

    rows = stored(sync_session)
    assert rows.keys() == {"stub-image@1", "stub-icon@1", "stub-image@2", "echo@1"}
    for model in CATALOG:
        row = rows[model.ref]
        assert (row.task, row.runner, row.description) == (
            model.task,
            model.runner,
            model.description,
        )
        assert (row.input_schema, row.default_parameters) == (
            model.input_schema,
            model.default_parameters,
        )


def test_an_edited_version_is_refused_and_nothing_is_written(sync_session: Session) -> None:
    sync(sync_session)
    image, icon, *_ = CATALOG
    bigger = {**image.input_schema, "title": "bigger"}
    edited = dataclasses.replace(image, input_schema=bigger)
    new = dataclasses.replace(icon, version="2")
    catalog = {model.ref for model in CATALOG}

    with pytest.raises(ModelChanged) as error:
        sync(sync_session, [edited, new])
    assert error.value.changes == {"stub-image@1": ["input_schema"]}
    assert str(error.value) == (
        "stub-image@1 (input_schema) differ from the catalog: a model is never edited in "
        "place; publish a new version instead"
    )
    assert stored(sync_session).keys() == catalog  # no stub-icon@2


def test_a_row_edited_in_the_database_is_refused(sync_session: Session) -> None:
    sync(sync_session)
    sync_session.execute(
        update(Model)
        .where(Model.name == "stub-icon")
        .values(task="text-to-emoji", description="changed")
    )
    with pytest.raises(ModelChanged) as error:
        sync(sync_session)
    assert error.value.changes == {"stub-icon@1": ["task", "description"]}


def test_a_new_version_is_inserted_beside_the_old(sync_session: Session) -> None:
    sync(sync_session)
    image = CATALOG[0]
    wider = {**image.input_schema, "title": "wider"}
    image_3 = dataclasses.replace(image, version="3", input_schema=wider)

    summary = sync(sync_session, [*CATALOG, image_3])
    assert (summary.inserted, summary.unchanged) == (
        ("stub-image@3",),
        ("stub-image@1", "stub-icon@1", "stub-image@2", "echo@1"),
    )
    rows = stored(sync_session)
    assert rows.keys() == {"stub-image@1", "stub-image@2", "stub-image@3", "stub-icon@1", "echo@1"}
    assert rows["stub-image@3"].input_schema == wider
    assert rows["stub-image@1"].input_schema == image.input_schema
