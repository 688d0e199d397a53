"""/openapi.json as the running service accepts it: each `model` parameter an enum of the loaded models that
can serve it, and the DIGITGEN_MAX_* limits filled in, for /docs, generated clients and schemathesis."""
from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.config import Settings
from service.errors import responses
from service.registry import GENERATIVE_KINDS
from service.schemas import LATENT_LIMIT, InterpolateRequest

REF_TEMPLATE = "#/components/schemas/{model}"
_KINDS_KEY = "x-model-kinds"  # set on an operation by model_kinds(); replaced by the enum


def model_kinds(kinds: tuple[str, ...], parameter: str = "model") -> dict:
    """openapi_extra for an operation whose `parameter` names a model of one of these kinds."""
    return {_KINDS_KEY: {"parameter": parameter, "kinds": list(kinds)}}


def models_by_kind(app: FastAPI) -> dict[str, str]:
    """name -> kind of the loaded models; before they are loaded, what the weights folder's model
    cards say (the registry loads exactly those)."""
    inference = getattr(app.state, "inference", None)
    if inference is not None:
        return {name: m.kind for name, m in inference.registry.models.items()}
    settings: Settings = app.state.settings
    found = {}
    for card_path in sorted(Path(settings.weights_dir).glob("*.json")):
        try:
            found[card_path.stem] = json.loads(card_path.read_text()).get("kind", "")
        except (OSError, ValueError, AttributeError):
            continue
    return found


def _latent_dims(app: FastAPI) -> set[int]:
    inference = getattr(app.state, "inference", None)
    if inference is None:
        return set()
    return {m.latent_dim for m in inference.registry.models.values() if m.is_generative}


def _unauthorized_response() -> dict:
    """The 401 as it appears in a generated schema (a $ref to ErrorBody)."""
    [(status, entry)] = responses("unauthorized").items()
    return {str(status): {"description": entry["description"], "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}}


def _give_example(parameter: dict) -> None:
    """Every parameter shows an example in /docs: its own, else its default, else an allowed value."""
    schema = parameter["schema"]
    if "example" in parameter or "examples" in schema:
        return
    if "enum" in schema:
        parameter["example"] = schema.get("default", schema["enum"][0])
    elif "default" in schema and schema["default"] is not None:
        parameter["example"] = schema["default"]


def complete_schema(app: FastAPI) -> dict:
    settings: Settings = app.state.settings
    schema = get_openapi(title=app.title, version=app.version, summary=app.summary, description=app.description,
                         routes=app.routes, tags=app.openapi_tags)
    kinds = models_by_kind(app)
    limits = {"n": {"maximum": settings.max_samples}, "scale": {"maximum": settings.max_scale},
              "steps": {"maximum": settings.max_steps}}
    for path, path_item in schema.get("paths", {}).items():
        # /dataset's n has its own limit; everywhere else n is /sample's
        path_limits = {**limits, "n": {"maximum": settings.max_dataset}} if path == "/dataset" else limits
        for operation in path_item.values():
            models = operation.pop(_KINDS_KEY, {"parameter": None})
            for parameter in operation.get("parameters", []):
                if parameter["name"] == models["parameter"]:
                    parameter["schema"]["enum"] = sorted(n for n, k in kinds.items() if k in models["kinds"])
                if parameter["in"] == "query" and parameter["name"] in path_limits:
                    parameter["schema"].update(path_limits[parameter["name"]])
                _give_example(parameter)
            if "security" in operation:  # only there when DIGITGEN_API_KEY is set (service/main.py)
                operation["responses"].update(_unauthorized_response())
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # POST /interpolate reads its body itself (JSON or multipart), so FastAPI does not list the model
    components["InterpolateRequest"] = InterpolateRequest.model_json_schema(ref_template=REF_TEMPLATE)
    dims = _latent_dims(app)
    for name in ("DecodeRequest", "InterpolateRequest"):
        if name not in components:
            continue
        properties = components[name]["properties"]
        properties["model"]["enum"] = sorted(n for n, k in kinds.items() if k in GENERATIVE_KINDS)
        vector = properties["latents"]["items"]  # one latent vector
        vector["items"].update(minimum=-LATENT_LIMIT, maximum=LATENT_LIMIT)
        if len(dims) == 1:  # one latent size for every loaded model: the schema can say it
            vector.update(minItems=min(dims), maxItems=min(dims))
        for field, bounds in limits.items():
            if field in properties:
                properties[field].update(bounds)
    if "DecodeRequest" in components:
        components["DecodeRequest"]["properties"]["latents"]["maxItems"] = settings.max_latents
    return schema


def install_openapi(app: FastAPI) -> None:
    """app.openapi() completed from the settings and the loaded models; cached once they are loaded."""
    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = complete_schema(app)
        if getattr(app.state, "inference", None) is not None:
            app.openapi_schema = schema
        return schema

    app.openapi = openapi
