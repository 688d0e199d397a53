"""GET /: a small page for people (HTML) or an index of the API (JSON), and the page's files under /ui/.

The page is plain HTML, CSS and JavaScript in service/static/, served by the service itself: no
CDN, no build step, works offline. It uses the public API only, from the browser, with the API key
(when the service asks for one) kept in the page's memory. Both the page and its files are public;
every answer here carries a Content-Security-Policy that allows scripts, styles and connections
from this origin only and no inline script or style, plus nosniff and no-referrer.

`/` picks its answer from the Accept header: HTML where the client asks for text/html (browsers
do), the JSON index otherwise (`Accept: application/json`, or none, as scripts send)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from service import __version__
from service.errors import error_response

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
INDEX_HTML = (STATIC_DIR / "index.html").read_bytes()  # read once: it ships with the package
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
LINKS = {
    "page": "/",
    "docs": "/docs",
    "redoc": "/redoc",
    "openapi": "/openapi.json",
    "models": "/models",
    "sample": "/sample",
    "dataset": "/dataset",
    "reconstruct": "/reconstruct",
    "encode": "/encode",
    "decode": "/decode",
    "interpolate": "/interpolate",
    "healthz": "/healthz",
    "readyz": "/readyz",
    "metrics": "/metrics",
}


class WithHeaders:
    """An ASGI wrapper that adds headers to every answer of the app it wraps (unless already set),
    its errors included: StaticFiles raises 404 and 405, answered here in the service's error shape."""

    def __init__(self, app, headers: dict[str, str]):
        self.app = app
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(name, value) for name, value in self.headers if name not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except HTTPException as exc:
            if exc.status_code == 404:
                answer = error_response("not_found", "no such file")
            elif exc.status_code == 405:
                answer = error_response("method_not_allowed", "files answer GET and HEAD only",
                                        headers={"Allow": "GET, HEAD"})
            else:
                raise
            await answer(scope, receive, send_with_headers)


def _q(accept: str, media: str) -> tuple[float, bool]:
    """(quality, named): the q the Accept header gives `media` by its most specific matching range
    (type/subtype over type/* over */*), and whether it names `media` itself."""
    kind = media.split("/")[0]
    best, specificity = 0.0, -1
    for part in accept.split(","):
        name, *params = (piece.strip() for piece in part.split(";"))
        name = name.lower()
        rank = {media: 2, f"{kind}/*": 1, "*/*": 0}.get(name)
        if rank is None or rank < specificity:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        best = q if rank > specificity else max(best, q)
        specificity = rank
    return best, specificity == 2


def wants_html(accept: str) -> bool:
    """HTML when the Accept header prefers text/html to application/json; a tie goes to HTML only
    where text/html is named (browsers name it), so `*/*` or no header gets JSON, as scripts want."""
    html_q, html_named = _q(accept, "text/html")
    json_q, _ = _q(accept, "application/json")
    return html_q > json_q or (html_q == json_q and html_q > 0 and html_named)


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
router.mount(STATIC_PREFIX, WithHeaders(StaticFiles(directory=STATIC_DIR), {**SECURITY_HEADERS, **REVALIDATE}),
             name="ui")


@router.get("/")
async def root(request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "Vary": "Accept"}
    if not wants_html(request.headers.get("accept", "")):
        return JSONResponse(index(request), headers=headers)
    return HTMLResponse(INDEX_HTML, headers={**headers, **REVALIDATE})
