"""The ASGI layers around the FastAPI app, and the one function that stacks them (build_stack)."""
from __future__ import annotations

import asyncio
from contextlib import suppress

from fastapi.middleware.cors import CORSMiddleware

from service.metrics import MODEL_KEY, MetricsMiddleware
from service.routes.sample import LeanSample

HEAD_KEY = "digitgen.head"  # in the scope of a GET that answers a HEAD
LINGER_BYTES = 64 * 1024 * 1024  # read and discard at most this much of a refused body
LINGER_SECONDS = 5.0  # and for at most this long
# what browsers may read from a cross-origin response besides the CORS-safelisted headers
EXPOSED_HEADERS = ["X-Seed", "X-Seed-A", "X-Seed-B", "X-Model", "X-Label-Source", "X-Class-Shares",
                   "X-Labels-Verified", "X-Request-ID", "ETag"]


def build_stack(api):
    """Outermost first: metrics (timing, X-Request-ID, the access log), CORS, the lean /sample path, HEAD as
    GET, lingering 413, FastAPI. A lean request (a GET that never uploads) skips every layer after its own."""
    settings = api.state.settings
    app = HeadAsGet(LingerAfter413(api))
    if settings.fast_path:
        app = LeanSample(app, api.state)
    if settings.cors_origins:
        app = CORSMiddleware(app, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                             allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                             expose_headers=EXPOSED_HEADERS)
    return MetricsMiddleware(app, metrics=api.state.metrics)


class HeadAsGet:
    """HEAD on every GET endpoint (RFC 9110 9.3.2): the GET's status and headers, Content-Length included,
    without its body. A route that makes its body while streaming (/dataset) reads HEAD_KEY and skips it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        inner = {**scope, "method": "GET", HEAD_KEY: True}
        try:
            await self.app(inner, receive, send_headers_only)
        finally:
            for key in ("route", MODEL_KEY):  # what the metrics label the request with
                if key in inner:
                    scope[key] = inner[key]


class LingerAfter413:
    """Lingering close after a 413, as nginx does: a client that writes its whole body before reading
    (urllib, many scripts) would otherwise get a reset instead of the answer. The rest of the body is read
    and discarded, up to max_bytes and max_seconds, before the response completes."""

    def __init__(self, app, max_bytes: int = LINGER_BYTES, max_seconds: float = LINGER_SECONDS):
        self.app = app
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"refused": False, "body_done": False}

        async def tracking_receive():
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def lingering_send(message):
            if message["type"] == "http.response.start":
                state["refused"] = message["status"] == 413 and not state["body_done"]
            elif message["type"] == "http.response.body" and state["refused"] and not message.get("more_body"):
                await send({**message, "more_body": True})
                await self._discard_rest(tracking_receive)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, tracking_receive, lingering_send)

    async def _discard_rest(self, receive) -> None:
        discarded = 0
        with suppress(TimeoutError):
            async with asyncio.timeout(self.max_seconds):
                while discarded <= self.max_bytes:
                    message = await receive()  # until the body ends or the client goes away
                    discarded += len(message.get("body", b""))
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        return
