"""GET /: a page for people (HTML) or an index of the API (JSON), by the Accept header, and the page's files
under /ui/ (service/static/: no CDN, no build step). Public; every answer carries a same-origin-only
Content-Security-Policy, nosniff and no-referrer."""
from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from service import __version__
from service.caching import etag, matches, not_modified
from service.errors import ApiError

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PREFIX = "/ui"  # /docs-static is fastapi-offline's (Swagger UI, ReDoc)

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# the page and its files change with the service's version: revalidate (ETag) rather than guess
REVALIDATE = {"Cache-Control": "no-cache"}

# what the JSON index links to: the API's entry points, relative to the service's root
LINKS = {"page": "/", "docs": "/docs", "redoc": "/redoc", "openapi": "/openapi.json", **{name: f"/{name}" for name in (
    "models", "sample", "dataset", "reconstruct", "encode", "decode", "interpolate", "healthz", "readyz", "metrics")}}


def wants_html(accept: str) -> bool:
    """Browsers name text/html first; scripts send */*, application/json or no Accept header at all."""
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return first in ("text/html", "text/*")


def index(request: Request) -> dict:
    settings = request.app.state.settings
    return {
        "name": "digitgen",
        "version": __version__,
        "description": "Handwritten-digit generation (VAE, GAN) over HTTP.",
        "api_key_required": settings.api_key is not None,
        "links": LINKS,
    }


router = APIRouter(include_in_schema=False)
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def _static(path: Path) -> tuple[bytes, str, str]:
    data = path.read_bytes()
    return data, MEDIA_TYPES[path.suffix], etag(f"/ui/{path.name}", (hashlib.sha256(data).hexdigest(),), {})


# name -> (bytes, media type, ETag): the files ship with the package, so they are read once
FILES = {path.name: _static(path) for path in STATIC_DIR.iterdir() if path.suffix in MEDIA_TYPES}


@router.get(STATIC_PREFIX + "/{name}")
async def static_file(name: str, request: Request) -> Response:
    if name not in FILES:
        raise ApiError("not_found", "no such file", headers=SECURITY_HEADERS)
    body, media_type, tag = FILES[name]
    headers = {**SECURITY_HEADERS, **REVALIDATE, "ETag": tag}
    if matches(request.headers.get("if-none-match"), tag):
        return not_modified(headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/")
async def root(request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "Vary": "Accept"}
    if not wants_html(request.headers.get("accept", "")):
        return JSONResponse(index(request), headers=headers)
    return HTMLResponse(FILES["index.html"][0], headers={**headers, **REVALIDATE})
