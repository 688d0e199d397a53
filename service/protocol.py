"""uvicorn's httptools protocol with the connection limits it lacks, held by the service whatever is in
front of it: header blocks over DIGITGEN_HEADER_MAX_BYTES get 431, headers not in within
DIGITGEN_HEADER_TIMEOUT_S of a request's first byte get 408 (after a response in progress, the connection
just ends), connections past DIGITGEN_MAX_CONNECTIONS per worker get 503; each closes the connection."""
from __future__ import annotations

import json
import logging
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import get_settings
from service.errors import CODES, error_body

log = logging.getLogger("digitgen")


def refusal(code: str, detail: str) -> bytes:
    """A complete HTTP/1.1 error response in the service's error shape that closes the connection."""
    status, _ = CODES[code]
    body = json.dumps(error_body(code, detail), separators=(",", ":")).encode()  # as JSONResponse writes it
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that is refused (see send_400_response)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_max_bytes = settings.header_max_bytes
        self.header_timeout_s = settings.header_timeout_s
        self.max_connections = settings.max_connections
        self.awaiting_headers = True  # from the connection's first byte to its first request's headers
        self.header_bytes = 0
        self.header_timer = None
        self.began = False  # a new request began during the current read
        self.refusal: bytes | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse("too_many_connections", f"over DIGITGEN_MAX_CONNECTIONS ({self.max_connections}) "
                         "connections are open; try again shortly")
            return
        self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.header_timer is None and self._idle():
            # bytes between requests (a request's start, or CRLFs llhttp skips without a callback) start
            # the clock uvicorn's keep-alive timer stops on any data
            self.awaiting_headers = True
            self._arm_header_timer()
        counted = self.awaiting_headers
        self.began = False
        super().data_received(data)
        # what the parser holds of an unfinished header block: the reads since the request began, but the
        # one it began in (which may hold the previous request's body), so at most the bound plus two reads
        if self.awaiting_headers and counted and not self.began and not self.transport.is_closing():
            self.header_bytes += len(data)
            if self.header_bytes > self.header_max_bytes:
                self._refuse("headers_too_large", self._too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.awaiting_headers, self.header_bytes, self.began = True, 0, True
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self.awaiting_headers = False
        self._cancel_header_timer()
        # a whole block that arrived in one or two reads: measured here, as the parser handed it over
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.header_max_bytes:
            log.warning("connection from %s refused: %s", self._peer(), self._too_large())
            self.refusal = refusal("headers_too_large", self._too_large())
            raise _Refused  # the parser stops; uvicorn answers its parser error with send_400_response
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self.refusal is None:
            super().send_400_response(msg)
        else:
            self._write_refusal(self.refusal)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _peer(self) -> str:
        return "%s:%d" % self.client if self.client else "?"

    def _too_large(self) -> str:
        return f"the request's headers are over DIGITGEN_HEADER_MAX_BYTES ({self.header_max_bytes} bytes)"

    def _arm_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.awaiting_headers and not self.transport.is_closing():
            self._refuse("request_timeout", f"the request's headers did not arrive within DIGITGEN_HEADER_TIMEOUT_S "
                         f"({self.header_timeout_s:g} s)")

    def _refuse(self, code: str, detail: str) -> None:
        log.warning("connection from %s refused: %s", self._peer(), detail)
        self._cancel_header_timer()
        if not self._idle():  # a pipelined request stalls behind a response being sent: end after that one
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self._write_refusal(refusal(code, detail))

    def _write_refusal(self, response: bytes) -> None:
        self.transport.write(response)
        self.transport.close()
