"""HEAD on every GET endpoint (RFC 9110 9.3.2): the GET's status and headers, no body.

FastAPI routes answer only the methods they declare, so a HEAD would be a 405. Running the GET
and dropping its body keeps one implementation per endpoint; Content-Length stays that of the
GET's body, as the RFC asks."""
from __future__ import annotations


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

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
