"""Lingering close for refused uploads, as nginx does it.

A client that writes its whole body before reading (Python's urllib, many scripts) never sees a
413 if the server answers and then drops the connection with the body still arriving: the kernel
resets the connection, and the client's write fails before it reads the answer. So after a 413
the response is held open (its whole body already sent, so the client has the complete answer),
the rest of the request body is read and discarded, up to a bound in bytes and in time, and only
then is the response completed. A client that sent `Expect: 100-continue` (curl) got no
100 Continue and sends nothing more; it closes, which ends the wait at once.
"""
from __future__ import annotations

import asyncio

LINGER_BYTES = 64 * 1024 * 1024  # read and discard at most this much of a refused body
LINGER_SECONDS = 5.0  # and for at most this long


class LingerAfter413:
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
        try:
            async with asyncio.timeout(self.max_seconds):
                while discarded <= self.max_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    discarded += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            return
