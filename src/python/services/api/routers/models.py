"""/v1/models: the registry of runnable models (synced from the catalog by `sync-models`)."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from modules.contract.problem import Problem
from modules.contract.v1 import MODEL_REF_PATTERN, ModelList, ModelOut
from modules.jobs.models import ModelNotFound, all_models, resolve
from services.api.dependencies import DatabaseSession
from services.api.presenters import model_out

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", summary="List the models, every version")
async def list_models(session: DatabaseSession) -> ModelList:
    return ModelList(data=[model_out(model) for model in await session.run_sync(all_models)])


@router.get(
    "/{name}",
    summary="Get a model: `name` (its newest version) or `name@version`",
    responses={404: {"model": Problem, "description": "No such model."}},
)
async def get_model(
    name: Annotated[str, Path(max_length=200, pattern=MODEL_REF_PATTERN)], session: DatabaseSession
) -> ModelOut:
    try:
        return model_out(await session.run_sync(resolve, name))
    except ModelNotFound:
        raise HTTPException(404, f"No model {name!r}: GET /v1/models lists them.") from None
