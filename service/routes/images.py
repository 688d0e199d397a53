"""POST /reconstruct and POST /encode: image uploads through the VAE."""
from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, Query, Request

from models.sampling import latents_for_seed, to_uint8
from service.deps import InferenceDep, SettingsDep, lookup_model
from service.errors import responses
from service.openapi import model_kinds
from service.routes.common import BINARY, MODEL_HEADER, check_output_size, encoded_response, new_seed
from service.schemas import SCALE_HELP, EncodeResponse, ModelName, Seed
from service.uploads import upload_body, uploaded_images

router = APIRouter(tags=["vae"])
VaeName = Annotated[ModelName, Query(description="a VAE from /models", examples=["vae"])]
Invert = Annotated[bool, Query(description="true for dark ink on a light background (scans, drawings)")]
IMAGE_BODY = upload_body("image")
UPLOAD_ERRORS = ("malformed_body", "invalid_image", "payload_too_large", "unsupported_media_type",
                 "invalid_parameters", "model_not_found", "wrong_model_kind", "not_ready")


@router.post(
    "/reconstruct",
    summary="Reconstruct an uploaded digit with a VAE",
    response_model=None,
    responses={200: {"content": {"image/png": BINARY}, "headers": {"X-Model": MODEL_HEADER},
                     "description": "the reconstruction as PNG"},
               **responses(*UPLOAD_ERRORS, "limit_exceeded")},
    openapi_extra={**IMAGE_BODY, **model_kinds(("vae",))},
)
async def reconstruct(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: VaeName = "vae",
    invert: Invert = False,
    side_by_side: Annotated[bool, Query(description="input | output in one PNG")] = False,
    scale: Annotated[int, Query(ge=1, description=SCALE_HELP)] = 1,
):
    """Any size or mode is converted to 28x28 grey, white digit on black (MNIST-style)."""
    served = lookup_model(request, inference.registry, model, kinds=("vae",), action="reconstruct")
    check_output_size(settings, 2 if side_by_side else 1, 2, scale)
    images = await uploaded_images(request, settings.max_upload_bytes, settings.max_image_pixels, invert)
    output = await inference.reconstruct(served, images)
    headers = {"X-Model": served.name}
    if side_by_side:
        return encoded_response(torch.cat([to_uint8(images), output]), "png", headers, 2, scale)
    return encoded_response(output, "png", headers, 1, scale)


@router.post(
    "/encode",
    summary="Encode an uploaded digit into the VAE's latent space",
    response_model=EncodeResponse,
    responses=responses(*UPLOAD_ERRORS),
    openapi_extra={**IMAGE_BODY, **model_kinds(("vae",))},
)
async def encode(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: VaeName = "vae",
    invert: Invert = False,
    seed: Annotated[Seed | None, Query(description="seed of the posterior sample z",
                                             examples=[42])] = None,
):
    served = lookup_model(request, inference.registry, model, kinds=("vae",), action="encode images")
    images = await uploaded_images(request, settings.max_upload_bytes, settings.max_image_pixels, invert)
    mu, logvar = await inference.run(inference.encode, served, images)
    seed = new_seed() if seed is None else seed
    z = mu + torch.exp(0.5 * logvar) * latents_for_seed(seed, 1, served.latent_dim)
    return EncodeResponse(model=served.name, latent_dim=served.latent_dim, seed=seed,
                          mu=mu[0].tolist(), logvar=logvar[0].tolist(), z=z[0].tolist())
