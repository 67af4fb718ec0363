"""Finding the model a job names: `name` (its newest version) or `name@version`."""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modules.persistence.models import Model


class ModelNotFound(Exception):
    def __init__(self, reference: str) -> None:
        super().__init__(f"no model {reference!r}")
        self.reference = reference


def resolve(session: Session, reference: str) -> Model:
    """The model `reference` names; raises ModelNotFound."""
    name, _, version = reference.partition("@")
    query = select(Model).where(Model.name == name)
    if version:
        query = query.where(Model.version == version)
    # Newest: published last; versions published together (one sync) by version, numbers
    # compared as numbers ("10" after "9").
    newest = (Model.created_at.desc(), func.length(Model.version).desc(), Model.version.desc())
    model = session.scalar(query.order_by(*newest).limit(1))
    if model is None:
        raise ModelNotFound(reference)
    return model


def all_models(session: Session) -> Sequence[Model]:
    return session.scalars(select(Model).order_by(Model.name, Model.created_at)).all()


class ModelCache:
    """Models named `name@version`, read once per process: a published version never changes
    (the catalog's sync refuses edits and nothing deletes one). A bare `name` means the newest
    version, which a sync can change, so it is read every time. Bounded by the catalog's size."""

    def __init__(self) -> None:
        self._versions: dict[str, Model] = {}

    def resolve(self, session: Session, reference: str) -> Model:
        """As resolve(). A remembered model is detached: no session's rollback can expire it."""
        if "@" not in reference:
            return resolve(session, reference)
        model = self._versions.get(reference)
        if model is None:
            model = resolve(session, reference)
            session.expunge(model)
            self._versions[reference] = model
        return model
