"""FastAPI dependencies and the Annotated aliases that keep route signatures short. `async def`, because
FastAPI runs a plain `def` dependency in its thread pool: a thread hop per request."""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.config import Settings
from service.errors import ApiError
from service.inference import Inference
from service.metrics import MODEL_KEY
from service.registry import Registry, ServedModel

# auto_error=False: a missing key is answered by require_api_key in the service's error shape
bearer_scheme = HTTPBearer(auto_error=False, scheme_name="apiKey",
                           description="DIGITGEN_API_KEY, sent as `Authorization: Bearer <key>`")


async def request_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_inference(request: Request) -> Inference:
    inference = getattr(request.app.state, "inference", None)
    if inference is None or not request.app.state.ready:
        raise ApiError("not_ready", "models are not loaded yet")
    return inference


def bearer_matches(authorization: str, key: str) -> bool:
    """`Authorization: Bearer <key>`, compared in constant time."""
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), key.encode())


async def require_api_key(request: Request,
                          _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]) -> None:
    """Bearer auth, constant-time, added only when DIGITGEN_API_KEY is set; the HTTPBearer parameter puts the
    scheme in /openapi.json (the Authorize button of /docs)."""
    key = request.app.state.settings.api_key
    if key is None:
        return
    if not bearer_matches(request.headers.get("authorization", ""), key.get_secret_value()):
        raise ApiError("unauthorized", "missing or wrong API key: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[Settings, Depends(request_settings)]
InferenceDep = Annotated[Inference, Depends(get_inference)]


def lookup_model(request: Request, registry: Registry, name: str, *, kinds: tuple[str, ...] | None = None,
                 action: str = "serve this request") -> ServedModel:
    model = registry.get(name)
    if model is None:
        known = ", ".join(sorted(registry.models))
        raise ApiError("model_not_found", f"unknown model; loaded models: {known}")  # input is not echoed
    request.scope[MODEL_KEY] = model.name  # metrics label (bounded: registry names only)
    if kinds is not None and model.kind not in kinds:
        raise ApiError("wrong_model_kind", f"model {model.name!r} is a {model.kind}; it cannot {action}")
    return model
