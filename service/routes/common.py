"""What the routes share: seeds, limit checks, OpenAPI response declarations and response encoding
(decode request -> predict -> encode response)."""
from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from functools import partial

import torch
from fastapi.responses import JSONResponse, Response

from models.shapes import IMAGE_SIZE
from service import imaging
from service.config import Settings
from service.errors import ApiError
from service.schemas import SampleQuery

NPY_MEDIA_TYPE = "application/x-npy"
BINARY = {"schema": {"type": "string", "format": "binary"}}


def header(description: str, example: str | None = None) -> dict:
    schema = {"type": "string"} if example is None else {"type": "string", "example": example}
    return {"description": description, "schema": schema}


SEED_HEADER = header("the seed used: send it back as seed= for the same bytes", "42")
MODEL_HEADER = header("the model that answered", "gan")
CACHE_HEADERS = {
    "ETag": header("seeded answers only: a strong tag of the weights and the normalised parameters"),
    "Cache-Control": header("seeded: public (private with an API key), max-age=31536000, immutable; "
                            "unseeded: no-store", "public, max-age=31536000, immutable"),
}
NOT_MODIFIED = {"description": "seeded, and If-None-Match names this answer's ETag: the client has these bytes",
                "headers": {"ETag": CACHE_HEADERS["ETag"]}}


def new_seed() -> int:
    return secrets.randbits(31)  # short enough to type back in


def check_limit(value: int, limit: int, what: str, setting: str) -> None:
    """A count within its DIGITGEN_<setting> limit, else limit_exceeded."""
    if value > limit:
        raise ApiError("limit_exceeded", f"{what} is {value}; the limit is {limit} (DIGITGEN_{setting})")


def check_output_size(settings: Settings, n: int, nrow: int, scale: int) -> None:
    """A PNG of n images (one, or a grid with 2-px gutters) at this scale, refused before any work when too big."""
    check_limit(scale, settings.max_scale, "scale", "MAX_SCALE")
    cols = min(n, nrow) if n > 1 else 1
    rows = math.ceil(n / cols)
    side = IMAGE_SIZE if n == 1 else IMAGE_SIZE + imaging.GRID_GUTTER
    pixels = (cols * side * scale) * (rows * side * scale)
    limit = settings.max_image_pixels
    if pixels > limit:
        raise ApiError("output_too_large", f"the PNG would have {pixels} pixels; the limit is {limit} "
                       "(DIGITGEN_MAX_IMAGE_PIXELS): lower n or scale, or use format=npy")


def check_sample(settings: Settings, query: SampleQuery) -> None:
    """The limits a /sample request must meet beyond its schema."""
    check_limit(query.n, settings.max_samples, "n", "MAX_SAMPLES")
    if query.format != "npy":
        check_output_size(settings, query.n, query.nrow, query.scale)


def encoder(format: str, nrow: int = 8, scale: int = 1) -> tuple[Callable[[torch.Tensor], bytes], str]:
    """(uint8 images -> body, media type) for format png or npy."""
    if format == "png":
        return partial(imaging.images_png, nrow=nrow, scale=scale), "image/png"
    return imaging.encode_npy, NPY_MEDIA_TYPE


def encoded_response(images_u8: torch.Tensor, format: str, headers: dict[str, str], nrow: int = 8,
                     scale: int = 1) -> Response:
    """uint8 images as a png (one image or a grid) or npy answer."""
    finish, media_type = encoder(format, nrow, scale)
    return Response(finish(images_u8), media_type=media_type, headers=headers)


async def samples_answer(inference, served, images_u8: torch.Tensor, latents: torch.Tensor, headers: dict[str, str],
                         *, seed: int = 0, digit: int | None = None, scale: int = 1) -> JSONResponse:
    """A SampleResponse: each image as a base64 PNG, with its latent and its classifier's verdict (if one is loaded)."""
    judge = inference.registry.judge(served)
    digits, confidence = await inference.run(inference.classify, judge, images_u8) if judge else (None, None)
    samples = [{"png_base64": imaging.png_base64(images_u8[i], scale), "latent": latents[i].tolist(),
                "digit": int(digits[i]) if judge else None,
                "confidence": round(float(confidence[i]), 6) if judge else None}
               for i in range(images_u8.shape[0])]
    return JSONResponse({"model": served.name, "seed": seed, "n": len(samples), "latent_dim": served.latent_dim,
                         "requested_digit": digit, "samples": samples}, headers=headers)
