"""Reading image uploads: size enforced while reading, multipart or raw image bodies."""
from __future__ import annotations

import asyncio

import torch
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service import imaging
from service.errors import ApiError

RAW_IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp", "image/bmp", "image/tiff"}


def upload_body(*fields: str, alternatives: dict | None = None) -> dict:
    """openapi_extra declaring an upload: multipart image `fields`, else (one field) a raw PNG or JPEG body,
    or the `alternatives` (media type -> content)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    content = {**(alternatives or {}), "multipart/form-data": {
        "schema": {"type": "object", "required": list(fields), "properties": {f: binary["schema"] for f in fields}},
        "encoding": {f: {"contentType": "image/png, image/jpeg"} for f in fields}}}
    if len(fields) == 1:
        content.update({"image/png": binary, "image/jpeg": binary})
    return {"requestBody": {"required": True, "content": content}}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing with 413 as soon as it passes `limit` bytes (never buffers more)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError("payload_too_large",
                       f"request body is {declared} bytes; the limit is {limit} (DIGITGEN_MAX_UPLOAD_BYTES)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("payload_too_large", f"request body exceeds {limit} bytes (DIGITGEN_MAX_UPLOAD_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def parse_multipart(request: Request, body: bytes, limit: int) -> dict[str, bytes | str]:
    async def stream():
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=4, max_fields=16, max_part_size=limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError("malformed_body", f"malformed multipart body: {exc.message}") from None
    fields: dict[str, bytes | str] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            fields[key] = await value.read()
            await value.close()
        else:
            fields[key] = value
    return fields


async def read_images(request: Request, limit: int, names: tuple[str, ...] = ("image",)) -> list[bytes]:
    """The uploaded image(s): multipart fields `names`, or (for one image) a raw image body."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        fields = await parse_multipart(request, await read_body(request, limit), limit)
        missing = [n for n in names if not isinstance(fields.get(n), bytes)]
        if missing:
            present = ", ".join(sorted(fields)) or "none"
            raise ApiError("invalid_parameters",
                           f"multipart file field(s) {', '.join(missing)} required (got fields: {present})",
                           errors=[{"loc": ["body", name], "msg": "a file is required", "type": "missing"}
                                   for name in missing])
        return [fields[n] for n in names]  # type: ignore[misc]
    if kind in RAW_IMAGE_TYPES and len(names) == 1:
        return [await read_body(request, limit)]
    accepted = "multipart/form-data" + ("" if len(names) > 1 else ", image/png or image/jpeg")
    raise ApiError("unsupported_media_type", f"unsupported media type {kind or 'none'!r}; send {accepted}")


async def uploaded_images(request: Request, max_upload_bytes: int, max_image_pixels: int, invert: bool,
                          names: tuple[str, ...] = ("image",)) -> torch.Tensor:
    """Upload(s) -> (k, 1, 28, 28) float in [0, 1], MNIST-style."""
    blobs = await read_images(request, max_upload_bytes, names)
    try:
        # Pillow work goes to the default thread pool, not the inference thread, so decoding an
        # upload never holds up a batched forward pass
        tensors = [await asyncio.to_thread(imaging.decode_upload, blob, invert=invert, max_pixels=max_image_pixels)
                   for blob in blobs]
    except imaging.ImageTooLargeError as exc:
        raise ApiError("payload_too_large", str(exc)) from None
    except imaging.ImageDecodeError as exc:
        raise ApiError("invalid_image", str(exc)) from None
    return torch.stack(tensors)
