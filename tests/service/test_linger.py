"""A refused upload is answered with its 413 even to a client that writes its whole body before
reading (service/middleware.py)."""
import asyncio
import urllib.error
import urllib.request

import pytest

from service.middleware import LingerAfter413
from tests.conftest import live_server


@pytest.mark.parametrize("path", ["/reconstruct", "/encode"])
def test_urllib_sees_the_413_for_a_20_mb_body(tiny_weights, path):
    with live_server({"DIGITGEN_WEIGHTS_DIR": str(tiny_weights)}) as (base, proc):
        request = urllib.request.Request(base + path, data=b"\0" * (20 * 1024 * 1024), method="POST",
                                         headers={"Content-Type": "image/png"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413
        body = refused.value.read()
        assert b'"code":"payload_too_large"' in body
        with urllib.request.urlopen(base + "/healthz", timeout=10) as alive:  # and it goes on serving
            assert alive.status == 200
        assert proc.poll() is None


async def _refuse(scope, receive, send):
    await send({"type": "http.response.start", "status": 413, "headers": []})
    await send({"type": "http.response.body", "body": b"too large"})


def _run(middleware, incoming):
    sent, received = [], []

    async def receive():
        message = await incoming()
        received.append(message)
        return message

    async def send(message):
        sent.append(message)

    asyncio.run(middleware({"type": "http", "method": "POST"}, receive, send))
    return sent, received


def test_the_rest_of_a_refused_body_is_read_before_the_response_completes():
    chunks = iter([{"type": "http.request", "body": b"x" * 10, "more_body": True}] * 3
                  + [{"type": "http.request", "body": b"x", "more_body": False}])

    async def incoming():
        return next(chunks)

    sent, received = _run(LingerAfter413(_refuse), incoming)
    assert len(received) == 4 and not received[-1]["more_body"]  # all of it read
    assert sent[1] == {"type": "http.response.body", "body": b"too large", "more_body": True}
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_discarding_is_bounded_in_time_and_bytes():
    async def stalled():
        await asyncio.sleep(3600)  # a client that declared a body and stopped sending

    sent, _ = _run(LingerAfter413(_refuse, max_seconds=0.05), stalled)
    assert sent[-1]["more_body"] is False

    async def endless():
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    sent, received = _run(LingerAfter413(_refuse, max_bytes=5000), endless)
    assert sent[-1]["more_body"] is False and len(received) == 6


def test_other_answers_pass_through_untouched():
    async def ok(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})

    async def never():
        raise AssertionError("nothing is read for a normal answer")

    sent, received = _run(LingerAfter413(ok), never)
    assert sent[-1] == {"type": "http.response.body", "body": b"fine"} and received == []
