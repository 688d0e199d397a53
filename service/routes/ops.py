"""GET /models, /healthz, /readyz and /metrics."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from models.checkpoint import KINDS
from models.sampling import is_conditional
from service.deps import InferenceDep, lookup_model, require_api_key
from service.errors import error_body, responses
from service.openapi import model_kinds
from service.registry import ServedModel
from service.schemas import Health, ModelInfo, ModelsResponse, Ready

router = APIRouter(tags=["operations"])
public = APIRouter(tags=["operations"])  # no API key: probes must work without secrets


def model_info(m: ServedModel, registry) -> ModelInfo:
    card = m.card
    judge = registry.judge(m) if m.is_generative else None
    return ModelInfo(
        name=m.name, kind=m.kind, dataset=m.dataset.title, classes=list(m.dataset.classes),
        conditional=m.is_generative and is_conditional(m.module),
        classifier=judge.name if judge else None, preset=card.get("preset"), description=card.get("description"),
        latent_dim=m.latent_dim, parameters=m.parameters, device=str(m.device), weights_sha256=m.sha256,
        epochs=card.get("epochs"), recipe=card.get("recipe", {}), training=card.get("training", {}),
        final_losses=card.get("final_losses", {}), metrics=card.get("metrics", {}),
    )


@router.get("/models", response_model=ModelsResponse, summary="Every loaded model with its card",
            responses=responses("not_ready"))
async def list_models(inference: InferenceDep) -> ModelsResponse:
    registry = inference.registry
    return ModelsResponse(device=str(registry.device), models=[model_info(m, registry) for m in registry.models.values()])


@router.get("/models/{name}", response_model=ModelInfo, summary="One loaded model with its card",
            responses=responses("model_not_found", "not_ready"), openapi_extra=model_kinds(tuple(KINDS), parameter="name"))
async def get_model(name: Annotated[str, Path(description="a model name from /models", examples=["gan"])],
                    request: Request, inference: InferenceDep) -> ModelInfo:
    return model_info(lookup_model(request, inference.registry, name), inference.registry)


async def metrics_key(request: Request) -> None:
    """/metrics is public like the probes, unless DIGITGEN_METRICS_REQUIRE_KEY=true with DIGITGEN_API_KEY set."""
    settings = request.app.state.settings
    if settings.metrics_require_key and settings.api_key is not None:
        await require_api_key(request, None)


@public.get("/metrics", summary="Prometheus metrics", response_class=Response, dependencies=[Depends(metrics_key)],
            description="Prometheus text format: the service's digitgen_* series and the process, "
            "platform and garbage-collector collectors (README: Metrics). Public unless "
            "DIGITGEN_METRICS_REQUIRE_KEY=true (with DIGITGEN_API_KEY set).",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **responses("unauthorized")})
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@public.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@public.get("/readyz", response_model=Ready, summary="Readiness: 200 once every model is loaded and warm",
            responses={503: {"model": Ready, "description": "`not_ready`: loading, or draining after SIGTERM"}})
async def readyz(request: Request):
    inference = getattr(request.app.state, "inference", None)
    if not request.app.state.ready or inference is None:
        status = "starting" if inference is None else "stopping"
        return JSONResponse({**error_body("not_ready", f"not ready: {status}"), "status": status}, status_code=503)
    registry = inference.registry
    return Ready(status="ready", device=str(registry.device), models=list(registry.models))
