"""Finding the model a job names: `name` (its newest version) or `name@version`."""

from collections.abc import Sequence

from sqlalchemy import select
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
    model = session.scalar(query.order_by(Model.created_at.desc(), Model.id.desc()).limit(1))
    if model is None:
        raise ModelNotFound(reference)
    return model


def all_models(session: Session) -> Sequence[Model]:
    return session.scalars(select(Model).order_by(Model.name, Model.created_at)).all()
