"""POST /reconstruct and POST /encode: image uploads through the VAE."""
from __future__ import annotations

import asyncio
from typing import Annotated

import torch
from fastapi import APIRouter, HTTPException, Query, Request

from service import imaging
from service.deps import InferenceDep, ModelName, SettingsDep, lookup_model
from service.inference import Inference
from service.registry import ServedModel
from service.routes.common import check_output_size, png_response
from service.routes.sample import MAX_SEED, new_seed
from service.schemas import Detail, EncodeResponse
from service.uploads import IMAGE_BODY, read_images

router = APIRouter(tags=["vae"])
Invert = Annotated[bool, Query(description="true for dark ink on a light background (scans, drawings)")]


async def uploaded_images(request: Request, inference: Inference, settings, invert: bool,
                          names: tuple[str, ...] = ("image",)) -> torch.Tensor:
    """Upload(s) -> (k, 1, 28, 28) float in [0, 1], MNIST-style."""
    blobs = await read_images(request, settings.max_upload_bytes, names)
    try:
        # Pillow work goes to the default thread pool, not the inference thread, so decoding an
        # upload never holds up a batched forward pass
        tensors = [await asyncio.to_thread(imaging.decode_upload, blob, invert=invert,
                                           max_pixels=settings.max_image_pixels) for blob in blobs]
    except imaging.ImageTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    except imaging.ImageDecodeError as exc:
        raise HTTPException(400, str(exc)) from None
    return torch.stack(tensors)


def vae_model(request: Request, inference: Inference, name: str, action: str) -> ServedModel:
    return lookup_model(request, inference.registry, name, kinds=("vae",), action=action)


@router.post(
    "/reconstruct",
    summary="Reconstruct an uploaded digit with a VAE",
    response_model=None,
    responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "the reconstruction as PNG"},
               400: {"model": Detail, "description": "undecodable image"}},
    openapi_extra=IMAGE_BODY,
)
async def reconstruct(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: ModelName = "vae",
    invert: Invert = False,
    side_by_side: Annotated[bool, Query(description="input | output in one PNG")] = False,
    scale: Annotated[int, Query(ge=1)] = 1,
):
    """Any size or mode is converted to 28x28 grey, white digit on black (MNIST-style)."""
    served = vae_model(request, inference, model, "reconstruct")
    check_output_size(settings, 2 if side_by_side else 1, 2, scale)
    images = await uploaded_images(request, inference, settings, invert)
    output = await inference.reconstruct(served, images)
    headers = {"X-Model": served.name}
    if side_by_side:
        return png_response(torch.cat([imaging.to_uint8(images), output]), 2, scale, headers)
    return png_response(output, 1, scale, headers)


@router.post(
    "/encode",
    summary="Encode an uploaded digit into the VAE's latent space",
    response_model=EncodeResponse,
    responses={400: {"model": Detail, "description": "undecodable image"}},
    openapi_extra=IMAGE_BODY,
)
async def encode(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: ModelName = "vae",
    invert: Invert = False,
    seed: Annotated[int | None, Query(ge=0, le=MAX_SEED, description="seed of the posterior sample z")] = None,
):
    served = vae_model(request, inference, model, "encode images")
    images = await uploaded_images(request, inference, settings, invert)
    mu, logvar = await inference.run(inference.encode, served, images)
    seed = new_seed() if seed is None else seed
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
    z = mu + torch.exp(0.5 * logvar) * eps
    return EncodeResponse(model=served.name, latent_dim=served.latent_dim, seed=seed,
                          mu=mu[0].tolist(), logvar=logvar[0].tolist(), z=z[0].tolist())
