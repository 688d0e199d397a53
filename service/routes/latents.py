"""POST /decode and GET|POST /interpolate: images from given latent vectors."""
from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from models.latent import interpolate
from models.sampling import seed_latents
from service import imaging
from service.caching import NO_STORE, seeded_answer
from service.deps import InferenceDep, SettingsDep, lookup_model
from service.errors import ApiError, field_errors, responses, validation_summary
from service.inference import Inference
from service.openapi import model_kinds
from service.registry import GENERATIVE_KINDS, ServedModel
from service.routes.common import (BINARY, CACHE_HEADERS, MODEL_HEADER, NOT_MODIFIED, NPY_MEDIA_TYPE, check_limit,
                                   check_output_size, encoded_response, encoder, header, new_seed, samples_answer)
from service.schemas import (GENERATIVE_HELP, LATENT_LIMIT, METHOD_HELP, SCALE_HELP, STEPS_HELP, STRIP_HELP,
                             DecodeRequest, InterpolateRequest, InterpolateResponse, Method, ModelName, SampleResponse,
                             Seed, StripFormat)
from service.uploads import media_type, read_body, upload_body, uploaded_images

router = APIRouter(tags=["latent space"])
LATENT_ERRORS = ("invalid_parameters", "invalid_latent", "limit_exceeded", "output_too_large", "model_not_found",
                 "wrong_model_kind", "not_ready")


def latent_tensor(rows: list[list[float]], served: ServedModel) -> torch.Tensor:
    """Validated (n, D) float32: right length, finite, bounded."""
    if any(len(row) != served.latent_dim for row in rows):
        raise ApiError("invalid_latent", f"every latent vector of {served.name!r} must have {served.latent_dim} values")
    z = torch.tensor(rows, dtype=torch.float32)
    if not torch.isfinite(z).all() or z.abs().max() > LATENT_LIMIT:
        raise ApiError("invalid_latent", f"latent values must be finite numbers within ±{LATENT_LIMIT:g}")
    return z


@router.post(
    "/decode",
    summary="Decode latent vectors into images",
    response_model=None,
    responses={200: {"content": {"image/png": BINARY, NPY_MEDIA_TYPE: BINARY}, "model": SampleResponse,
                     "headers": {"X-Model": MODEL_HEADER},
                     "description": "PNG grid, JSON, or a uint8 .npy array (n, 28, 28)"},
               **responses(*LATENT_ERRORS, "malformed_body")},
)
async def decode(body: DecodeRequest, request: Request, inference: InferenceDep, settings: SettingsDep):
    served = lookup_model(request, inference.registry, body.model, kinds=GENERATIVE_KINDS, action="decode")
    check_limit(len(body.latents), settings.max_latents, "the number of latents", "MAX_LATENTS")
    if body.format != "npy":
        check_output_size(settings, len(body.latents), body.nrow, body.scale)
    z = latent_tensor(body.latents, served)
    headers = {"X-Model": served.name}
    if body.format != "json":
        finish, media_type = encoder(body.format, body.nrow, body.scale)
        return Response(await inference.generate(served, z, finish), media_type=media_type, headers=headers)
    return await samples_answer(inference, served, await inference.generate(served, z), z, headers, scale=body.scale)


def check_interpolation(settings, steps: int, scale: int) -> None:
    """An interpolation's limits, checked before any work (a 304 included)."""
    check_limit(steps, settings.max_steps, "steps", "MAX_STEPS")
    check_output_size(settings, steps, steps, scale)


async def interpolation_response(inference: Inference, served: ServedModel, z_a: torch.Tensor, z_b: torch.Tensor,
                                 steps: int, method: str, format: str, scale: int, headers: dict[str, str]):
    path = interpolate(z_a.double(), z_b.double(), steps, method).float()
    images = await inference.generate(served, path)
    if format == "png":
        return encoded_response(images, "png", headers, steps, scale)
    return JSONResponse(InterpolateResponse(
        model=served.name, method=method, steps=steps, latents=path.tolist(),
        images_png_base64=[imaging.png_base64(images[i], scale) for i in range(steps)]).model_dump(), headers=headers)


def interpolate_ok(headers: dict) -> dict:
    return {200: {"content": {"image/png": BINARY}, "model": InterpolateResponse, "headers": headers,
                  "description": "a PNG strip, or JSON"}}


Steps = Annotated[int, Query(ge=2, description=STEPS_HELP)]
MethodQuery = Annotated[Method, Query(description=METHOD_HELP)]
Scale = Annotated[int, Query(ge=1, description=SCALE_HELP)]
SEED_END = "the latent /sample?n=1&seed= uses for this end; omitted: a random seed (in X-Seed-A / X-Seed-B)"


@router.get("/interpolate", summary="Interpolate between the latents of two seeds", response_model=None,
            responses={**interpolate_ok({"X-Seed-A": header("seed of the start", "1"),
                                         "X-Seed-B": header("seed of the end", "2"), "X-Model": MODEL_HEADER,
                                         **CACHE_HEADERS}),
                       304: NOT_MODIFIED,
                       **responses("invalid_parameters", "limit_exceeded", "output_too_large", "model_not_found",
                                   "wrong_model_kind", "not_ready")},
            openapi_extra=model_kinds(GENERATIVE_KINDS))
async def interpolate_seeds(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: Annotated[ModelName, Query(description=GENERATIVE_HELP, examples=["gan"])] = "gan",
    seed_a: Annotated[Seed | None, Query(description=SEED_END, examples=[1])] = None,
    seed_b: Annotated[Seed | None, Query(description=SEED_END, examples=[2])] = None,
    steps: Steps = 10,
    method: MethodQuery = "slerp",
    format: Annotated[StripFormat, Query(description=STRIP_HELP)] = "png",
    scale: Scale = 1,
):
    """The end points are the latents of `/sample?n=1&seed=seed_a` and `seed_b`, so they match those images."""
    served = lookup_model(request, inference.registry, model, kinds=GENERATIVE_KINDS, action="interpolate")
    check_interpolation(settings, steps, scale)
    headers: dict[str, str] = {}
    if seed_a is None or seed_b is None:
        headers.update(NO_STORE)
    else:
        params = {"model": served.name, "seed_a": seed_a, "seed_b": seed_b, "steps": steps, "method": method,
                  "format": format, "scale": scale}
        cached = seeded_answer(headers, "/interpolate", (served.sha256,), params, private=settings.api_key is not None,
                               if_none_match=request.headers.get("if-none-match"))
        if cached is not None:
            return cached
    seed_a = new_seed() if seed_a is None else seed_a
    seed_b = new_seed() if seed_b is None else seed_b
    z_a = seed_latents(served.module, seed_a, 1)[0]
    z_b = seed_latents(served.module, seed_b, 1)[0]
    headers.update({"X-Seed-A": str(seed_a), "X-Seed-B": str(seed_b), "X-Model": served.name})
    return await interpolation_response(inference, served, z_a, z_b, steps, method, format, scale, headers)


INTERPOLATE_BODY = upload_body("image_a", "image_b", alternatives={
    "application/json": {"schema": {"$ref": "#/components/schemas/InterpolateRequest"}}})


@router.post("/interpolate", summary="Interpolate between two latent vectors or two uploaded images",
             response_model=None,
             responses={**interpolate_ok({"X-Model": MODEL_HEADER}),
                        **responses(*LATENT_ERRORS, "malformed_body", "invalid_image", "payload_too_large",
                                    "unsupported_media_type")},
             openapi_extra={**INTERPOLATE_BODY, **model_kinds(("vae",))})
async def interpolate_post(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: Annotated[ModelName, Query(description="multipart only: a VAE", examples=["vae"])] = "vae",
    steps: Steps = 10,
    method: MethodQuery = "slerp",
    format: Annotated[StripFormat, Query(description="multipart only: " + STRIP_HELP)] = "png",
    invert: Annotated[bool, Query(description="multipart only: dark ink on a light background")] = False,
    scale: Scale = 1,
):
    """JSON body `{"model", "latents": [z_a, z_b], "steps", "method", "format"}`, or multipart fields
    `image_a` and `image_b`, which the VAE encodes (posterior means) and interpolates between.
    The query parameters apply to multipart requests only, but are checked on every request."""
    check_interpolation(settings, steps, scale)
    multipart = media_type(request) == "multipart/form-data"
    if multipart or "model" in request.query_params:
        vae = lookup_model(request, inference.registry, model, kinds=("vae",), action="encode images")
    if multipart:
        images = await uploaded_images(request, settings.max_upload_bytes, settings.max_image_pixels, invert,
                                       names=("image_a", "image_b"))
        mu, _ = await inference.run(inference.encode, vae, images)
        return await interpolation_response(inference, vae, mu[0], mu[1], steps, method, format, scale,
                                            {"X-Model": vae.name})
    if media_type(request) != "application/json":
        raise ApiError("unsupported_media_type",
                       "send application/json with two latents, or multipart/form-data with two images")
    raw = await read_body(request, settings.max_upload_bytes)
    try:
        body = InterpolateRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc.errors(include_url=False, include_context=False, include_input=False))
        errors = [{**e, "loc": ["body", *e["loc"]]} for e in errors]
        raise ApiError("invalid_parameters", validation_summary(errors), errors=errors) from None
    served = lookup_model(request, inference.registry, body.model, kinds=GENERATIVE_KINDS, action="interpolate")
    check_interpolation(settings, body.steps, body.scale)
    z = latent_tensor(body.latents, served)
    return await interpolation_response(inference, served, z[0], z[1], body.steps, body.method, body.format,
                                        body.scale, {"X-Model": served.name})
