"""HEAD on every GET endpoint (RFC 9110 9.3.2): the GET's status and headers, no body.

FastAPI routes answer only the methods they declare, so a HEAD would be a 405. Running the GET
and dropping its body keeps one implementation per endpoint; Content-Length stays that of the
GET's body, as the RFC asks. A route whose body is made while it streams (/dataset) reads
HEAD_KEY in the scope and skips making it."""
from __future__ import annotations

from service.metrics import MODEL_KEY

HEAD_KEY = "digitgen.head"  # in the scope of a GET that answers a HEAD


class HeadAsGet:
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
            # the route and model the metrics label this request with (set by routing, in the copy)
            for key in ("route", MODEL_KEY):
                if key in inner:
                    scope[key] = inner[key]
