"""Connection-level limits held by the server process itself (service/protocol.py): an endless header
line is cut off at DIGITGEN_HEADER_MAX_BYTES with 431, headers that never finish are cut off after
DIGITGEN_HEADER_TIMEOUT_S with 408, and connections past DIGITGEN_MAX_CONNECTIONS get 503; meanwhile
the service answers everyone else."""
import io
import json
import socket
import time

import httpx
import numpy as np
import pytest

from benchmarks.common import rss_mb
from tests.conftest import live_server

LIMITS = {"DIGITGEN_HEADER_MAX_BYTES": "8192", "DIGITGEN_HEADER_TIMEOUT_S": "2", "DIGITGEN_MAX_CONNECTIONS": "8"}


@pytest.fixture(scope="module")
def server(tiny_weights):
    with live_server({**LIMITS, "DIGITGEN_WEIGHTS_DIR": str(tiny_weights)}) as (base, proc):
        yield base, int(base.rsplit(":", 1)[1]), proc.pid


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout bounds the wait)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def answer(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_an_endless_header_line_is_cut_off_at_the_bound(server):
    base, port, pid = server
    before = rss_mb(pid)
    assert before > 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 4096)
        assert httpx.get(f"{base}/healthz").status_code == 200  # others are served meanwhile
        sent = 4096
        try:
            while sent < 8 * 1024 * 1024:  # would be 8 MiB; the server stops reading at the bound
                sock.sendall(b"a" * 4096)
                sent += 4096
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = read_until_closed(sock)
    status, body = answer(raw)
    assert status == 431 and body["code"] == "headers_too_large" and "DIGITGEN_HEADER_MAX_BYTES" in body["detail"]
    # the server kept at most the bound and a read of it: a parser holding the whole line would hold 8 MiB
    assert rss_mb(pid) - before < 4  # MiB
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_headers_that_never_finish_are_cut_off_after_the_timeout(server):
    base, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as slow, \
            socket.create_connection(("127.0.0.1", port), timeout=30) as silent:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n")  # and never the blank line
        started = time.monotonic()
        assert httpx.get(f"{base}/healthz").status_code == 200  # others are served meanwhile
        raw = read_until_closed(slow)
        waited = time.monotonic() - started
        quiet = read_until_closed(silent)  # a connection that sends nothing at all
    status, body = answer(raw)
    assert status == 408 and body["code"] == "request_timeout"
    assert 1.5 < waited < 15
    assert answer(quiet)[0] == 408


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("between", [b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"\r\n"])
def test_a_kept_alive_connection_gets_a_fresh_clock_per_request(server, between):
    """After a response, the next request's headers (or bytes that start none, like a bare CRLF, which
    the parser skips) have the timeout from their arrival, not from the connection's opening."""
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for _ in range(3):  # 3 requests x ~1 s apart: longer than the 2 s timeout in all
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sock.sendall(between)  # then nothing more
        status, _ = answer(read_until_closed(sock))
        waited = time.monotonic() - started
    assert status == 408 and 1.5 < waited < 15


def test_a_whole_oversized_header_block_in_one_read_is_refused(server):
    base, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        status, body = answer(read_until_closed(sock))
    assert status == 431 and body["code"] == "headers_too_large"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # just under the bound: served
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 7000 + b"\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")


def dechunked(body: bytes) -> tuple[bytes, bytes]:
    """A chunked body -> (its data, what followed the last chunk)."""
    data, rest = [], body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b"".join(data), rest[2:]  # past the empty chunk's closing CRLF
        data.append(rest[:size])
        rest = rest[size + 2:]


def test_a_request_stalled_behind_a_response_ends_the_connection_after_that_response(conditional_weights):
    """A pipelined request whose headers never finish while the response before it is still being sent
    (the client is not reading): that response is sent whole, nothing is written into it, and then
    the connection closes."""
    with live_server({**LIMITS, "DIGITGEN_WEIGHTS_DIR": str(conditional_weights)}) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /dataset?model=gan&n=30000&seed=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            # 24 MB do not fit the socket buffers: the response waits for this client while the second
            # request's header clock runs out; the server says so in its log
            while "did not arrive" not in proc.stderr.readline():
                pass
            raw = read_until_closed(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    archive, after = dechunked(body)
    assert after == b""  # closed after the response: no 408 appended, none inside it
    with np.load(io.BytesIO(archive)) as data:
        assert data["images"].shape == (30000, 28, 28)


def test_connections_past_the_cap_are_refused_and_the_rest_served(server):
    base, port, _ = server
    held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(8)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
            status, body = answer(read_until_closed(extra))
        assert status == 503 and body["code"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
    for _ in range(50):  # the server sees the closes soon after; each try is a real request
        if httpx.get(f"{base}/healthz").status_code == 200:
            break
    assert httpx.get(f"{base}/healthz").status_code == 200
