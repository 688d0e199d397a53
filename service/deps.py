"""FastAPI dependencies and the Annotated aliases that keep route signatures short.

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
pool, a thread hop per dependency per request, which costs more than the work they do."""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from service.config import Settings
from service.inference import Inference
from service.metrics import MODEL_KEY
from service.registry import Registry, ServedModel


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_inference(request: Request) -> Inference:
    inference = getattr(request.app.state, "inference", None)
    if inference is None or not request.app.state.ready:
        raise HTTPException(503, "models are not loaded yet")
    return inference


async def get_registry(inference: Annotated[Inference, Depends(get_inference)]) -> Registry:
    return inference.registry


def bearer_matches(authorization: str, key: str) -> bool:
    """`Authorization: Bearer <key>`, compared in constant time."""
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), key.encode())


async def require_api_key(request: Request) -> None:
    """Bearer auth when DIGITGEN_API_KEY is set; constant-time comparison."""
    key = request.app.state.settings.api_key
    if key is None:
        return
    if not bearer_matches(request.headers.get("authorization", ""), key.get_secret_value()):
        raise HTTPException(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[Settings, Depends(get_settings)]
InferenceDep = Annotated[Inference, Depends(get_inference)]
RegistryDep = Annotated[Registry, Depends(get_registry)]

# Model names come only from the registry; anything else (paths included) is a 404 by lookup.
ModelName = Annotated[str, Query(min_length=1, max_length=64, description="a model name from /models",
                                 examples=["gan", "vae"])]


def lookup_model(request: Request, registry: Registry, name: str, *, kinds: tuple[str, ...] | None = None,
                 action: str = "serve this request") -> ServedModel:
    model = registry.get(name)
    if model is None:
        known = ", ".join(sorted(registry.models))
        raise HTTPException(404, f"unknown model; loaded models: {known}")  # input is not echoed
    request.scope[MODEL_KEY] = model.name  # metrics label (bounded: registry names only)
    if kinds is not None and model.kind not in kinds:
        raise HTTPException(422, f"model {model.name!r} is a {model.kind}; it cannot {action}")
    return model


def check_limit(value: int, limit: int, what: str, setting: str) -> None:
    if value > limit:
        raise HTTPException(422, f"{what} is {value}; the limit is {limit} (DIGITGEN_{setting})")
