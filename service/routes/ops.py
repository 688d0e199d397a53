"""GET /models, /healthz, /readyz and /metrics."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import RegistryDep, lookup_model
from service.registry import ServedModel
from service.schemas import Health, ModelInfo, ModelsResponse, Ready

router = APIRouter(tags=["operations"])
public = APIRouter(tags=["operations"])  # no API key: probes must work without secrets


def model_info(m: ServedModel) -> ModelInfo:
    card = m.card
    return ModelInfo(
        name=m.name, kind=m.kind, family=m.family, preset=card.get("preset"), description=card.get("description"),
        latent_dim=m.latent_dim, parameters=m.parameters, device=str(m.device), weights_sha256=m.sha256,
        epochs=card.get("epochs"), recipe=card.get("recipe", {}), training=card.get("training", {}),
        final_losses=card.get("final_losses", {}), metrics=card.get("metrics", {}),
    )


@router.get("/models", response_model=ModelsResponse, summary="Every loaded model with its card")
async def list_models(registry: RegistryDep) -> ModelsResponse:
    return ModelsResponse(device=str(registry.device), models=[model_info(m) for m in registry.models.values()])


@router.get("/models/{name}", response_model=ModelInfo, summary="One loaded model with its card",
            responses={404: {"description": "unknown model"}})
async def get_model(name: str, request: Request, registry: RegistryDep) -> ModelInfo:
    return model_info(lookup_model(request, registry, name))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@public.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@public.get("/readyz", response_model=Ready, summary="Readiness: 200 once every model is loaded and warm",
            responses={503: {"model": Ready, "description": "not ready"}})
async def readyz(request: Request):
    inference = getattr(request.app.state, "inference", None)
    if not request.app.state.ready or inference is None:
        return JSONResponse({"status": "starting" if inference is None else "stopping"}, status_code=503)
    registry = inference.registry
    return Ready(status="ready", device=str(registry.device), models=list(registry.models))
