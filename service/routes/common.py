"""Response encoding shared by the image-returning routes (decode request -> predict -> encode)."""
from __future__ import annotations

import math

import torch
from fastapi import HTTPException
from fastapi.responses import JSONResponse, Response

from service import imaging
from service.config import Settings
from service.inference import Classified
from service.schemas import Detail

NPY_MEDIA_TYPE = "application/x-npy"
INTERNAL_ERROR = {"detail": "internal server error"}  # the whole 500 body: no traceback, no message
IMAGE_RESPONSES = {
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                      NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "PNG (one image, or a grid), JSON, or a uint8 .npy array (n, 28, 28)"},
}
ERROR_RESPONSES = {code: {"model": Detail, "description": text} for code, text in {
    400: "malformed request body or undecodable image",
    401: "missing or wrong API key (only when DIGITGEN_API_KEY is set)", 404: "unknown model",
    413: "upload too large", 415: "unsupported media type", 422: "invalid parameters", 503: "not ready"}.items()}


def output_size_problem(settings: Settings, n: int, nrow: int, scale: int) -> str | None:
    """Why a PNG of n images (one image, or a grid with 2-px gutters) at this scale would be too
    big, or None when it is within the limits. One rule for the routes and the lean /sample path."""
    if scale > settings.max_scale:
        return f"scale is {scale}; the limit is {settings.max_scale} (DIGITGEN_MAX_SCALE)"
    cols = min(n, nrow) if n > 1 else 1
    rows = math.ceil(n / cols)
    side = 28 if n == 1 else 30
    pixels = (cols * side * scale) * (rows * side * scale)
    limit = settings.max_image_pixels
    if pixels > limit:
        return f"the PNG would have {pixels} pixels; the limit is {limit} (lower n or scale, or use format=npy)"
    return None


def check_output_size(settings: Settings, n: int, nrow: int, scale: int) -> None:
    """Refuse PNGs whose pixel count would be silly before doing any work."""
    problem = output_size_problem(settings, n, nrow, scale)
    if problem is not None:
        raise HTTPException(422, problem)


def png_response(images_u8: torch.Tensor, nrow: int, scale: int, headers: dict[str, str]) -> Response:
    return Response(imaging.images_png(images_u8, nrow=nrow, scale=scale), media_type="image/png", headers=headers)


def npy_response(images_u8: torch.Tensor, headers: dict[str, str]) -> Response:
    return Response(imaging.encode_npy(images_u8), media_type=NPY_MEDIA_TYPE, headers=headers)


def samples_json(images_u8: torch.Tensor, latents: torch.Tensor, verdict: Classified | None,
                 scale: int) -> list[dict]:
    items = []
    for i in range(images_u8.shape[0]):
        items.append({
            "png_base64": imaging.png_base64(images_u8[i], scale),
            "latent": latents[i].tolist(),
            "digit": int(verdict.digits[i]) if verdict is not None else None,
            "confidence": round(float(verdict.confidence[i]), 6) if verdict is not None else None,
        })
    return items


def json_response(body: dict, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(body, headers=headers)
