"""POST /decode and GET|POST /interpolate: images from given latent vectors."""
from __future__ import annotations

from typing import Annotated, Literal

import torch
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import ValidationError

from service import imaging
from service.deps import InferenceDep, ModelName, SettingsDep, check_limit, lookup_model
from service.inference import Inference, latents_for_seed
from service.registry import ServedModel
from service.routes.common import (IMAGE_RESPONSES, check_output_size, json_response,
                                   npy_response, png_response, samples_json)
from service.routes.images import uploaded_images
from service.routes.sample import MAX_SEED, new_seed
from service.schemas import DecodeRequest, Detail, InterpolateRequest, InterpolateResponse, SampleResponse
from service.uploads import media_type, read_body

router = APIRouter(tags=["latent space"])
LATENT_LIMIT = 1000.0


def latent_tensor(rows: list[list[float]], served: ServedModel) -> torch.Tensor:
    """Validated (n, D) float32: right length, finite, bounded."""
    if any(len(row) != served.latent_dim for row in rows):
        raise HTTPException(422, f"every latent vector of {served.name!r} must have {served.latent_dim} values")
    z = torch.tensor(rows, dtype=torch.float32)
    if not torch.isfinite(z).all() or z.abs().max() > LATENT_LIMIT:
        raise HTTPException(422, f"latent values must be finite numbers within ±{LATENT_LIMIT:g}")
    return z


@router.post(
    "/decode",
    summary="Decode latent vectors into images",
    response_model=None,
    responses={**IMAGE_RESPONSES, 200: {**IMAGE_RESPONSES[200], "model": SampleResponse}},
)
async def decode(body: DecodeRequest, request: Request, inference: InferenceDep, settings: SettingsDep):
    served = lookup_model(request, inference.registry, body.model, kinds=("vae", "generator"), action="decode")
    check_limit(len(body.latents), settings.max_latents, "the number of latents", "MAX_LATENTS")
    if body.format != "npy":
        check_output_size(settings, len(body.latents), body.nrow, body.scale)
    z = latent_tensor(body.latents, served)
    images = await inference.generate(served, z)
    headers = {"X-Model": served.name}
    if body.format == "png":
        return png_response(images, body.nrow, body.scale, headers)
    if body.format == "npy":
        return npy_response(images, headers)
    verdict = await inference.run(inference.classify, images) if inference.registry.classifier else None
    return json_response({"model": served.name, "seed": 0, "n": len(z), "latent_dim": served.latent_dim,
                          "requested_digit": None, "samples": samples_json(images, z, verdict, body.scale)}, headers)


async def interpolation_response(inference: Inference, served: ServedModel, settings, z_a: torch.Tensor,
                                 z_b: torch.Tensor, steps: int, method: str, format: str, scale: int,
                                 headers: dict[str, str]):
    check_limit(steps, settings.max_steps, "steps", "MAX_STEPS")
    check_output_size(settings, steps, steps, scale)
    path = inference.interpolate_latents(z_a, z_b, steps, method)
    images = await inference.generate(served, path)
    if format == "png":
        return png_response(images, steps, scale, headers)
    return json_response(InterpolateResponse(
        model=served.name, method=method, steps=steps, latents=path.tolist(),
        images_png_base64=[imaging.png_base64(images[i], scale) for i in range(steps)]).model_dump(), headers)


INTERPOLATE_RESPONSES = {200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                               "model": InterpolateResponse, "description": "a PNG strip, or JSON"}}


@router.get("/interpolate", summary="Interpolate between the latents of two seeds", response_model=None,
            responses=INTERPOLATE_RESPONSES)
async def interpolate_seeds(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: ModelName = "gan",
    seed_a: Annotated[int | None, Query(ge=0, le=MAX_SEED, description="start: the latent /sample?seed= uses")] = None,
    seed_b: Annotated[int | None, Query(ge=0, le=MAX_SEED, description="end point's seed")] = None,
    steps: Annotated[int, Query(ge=2)] = 10,
    method: Literal["slerp", "lerp"] = "slerp",
    format: Literal["png", "json"] = "png",
    scale: Annotated[int, Query(ge=1)] = 1,
):
    """The end points are the latents of `/sample?n=1&seed=seed_a` and `seed_b`, so they match those images."""
    served = lookup_model(request, inference.registry, model, kinds=("vae", "generator"), action="interpolate")
    seed_a = new_seed() if seed_a is None else seed_a
    seed_b = new_seed() if seed_b is None else seed_b
    z_a = latents_for_seed(seed_a, 1, served.latent_dim)[0]
    z_b = latents_for_seed(seed_b, 1, served.latent_dim)[0]
    headers = {"X-Seed-A": str(seed_a), "X-Seed-B": str(seed_b), "X-Model": served.name}
    return await interpolation_response(inference, served, settings, z_a, z_b, steps, method, format, scale, headers)


INTERPOLATE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": InterpolateRequest.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image_a", "image_b"], "properties": {
        "image_a": {"type": "string", "format": "binary"}, "image_b": {"type": "string", "format": "binary"}}}},
}}}


@router.post("/interpolate", summary="Interpolate between two latent vectors or two uploaded images",
             response_model=None,
             responses={**INTERPOLATE_RESPONSES, 400: {"model": Detail, "description": "undecodable image"}},
             openapi_extra=INTERPOLATE_BODY)
async def interpolate_post(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: Annotated[str, Query(min_length=1, max_length=64, description="multipart only: a VAE")] = "vae",
    steps: Annotated[int, Query(ge=2, description="multipart only")] = 10,
    method: Annotated[Literal["slerp", "lerp"], Query(description="multipart only")] = "slerp",
    format: Annotated[Literal["png", "json"], Query(description="multipart only")] = "png",
    invert: Annotated[bool, Query(description="multipart only")] = False,
    scale: Annotated[int, Query(ge=1, description="multipart only")] = 1,
):
    """JSON body `{"model", "latents": [z_a, z_b], "steps", "method", "format"}`, or multipart fields
    `image_a` and `image_b`, which the VAE encodes (posterior means) and interpolates between."""
    if media_type(request) == "multipart/form-data":
        served = lookup_model(request, inference.registry, model, kinds=("vae",), action="encode images")
        images = await uploaded_images(request, inference, settings, invert, names=("image_a", "image_b"))
        mu, _ = await inference.run(inference.encode, served, images)
        return await interpolation_response(inference, served, settings, mu[0], mu[1], steps, method, format, scale,
                                            {"X-Model": served.name})
    if media_type(request) != "application/json":
        raise HTTPException(415, "send application/json with two latents, or multipart/form-data with two images")
    raw = await read_body(request, settings.max_upload_bytes)
    try:
        body = InterpolateRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False, include_input=False)) from None
    served = lookup_model(request, inference.registry, body.model, kinds=("vae", "generator"), action="interpolate")
    z = latent_tensor(body.latents, served)
    return await interpolation_response(inference, served, settings, z[0], z[1], body.steps, body.method,
                                        body.format, body.scale, {"X-Model": served.name})
