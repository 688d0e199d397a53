"""Reading image uploads: size enforced while reading, multipart or raw image bodies."""
from __future__ import annotations

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

RAW_IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp", "image/bmp", "image/tiff"}

# OpenAPI description of an image upload, shared by /reconstruct and /encode
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                               "properties": {"image": {"type": "string", "format": "binary"}}}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing with 413 as soon as it passes `limit` bytes (never buffers more)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body is {declared} bytes; the limit is {limit} (DIGITGEN_MAX_UPLOAD_BYTES)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body exceeds {limit} bytes (DIGITGEN_MAX_UPLOAD_BYTES)")
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
        raise HTTPException(400, f"malformed multipart body: {exc.message}") from None
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
            raise HTTPException(422, f"multipart file field(s) {', '.join(missing)} required (got fields: {present})")
        return [fields[n] for n in names]  # type: ignore[misc]
    if kind in RAW_IMAGE_TYPES and len(names) == 1:
        return [await read_body(request, limit)]
    accepted = "multipart/form-data" + ("" if len(names) > 1 else ", image/png or image/jpeg")
    raise HTTPException(415, f"unsupported media type {kind or 'none'!r}; send {accepted}")
