"""A corpus of hostile or odd requests: each gets a 4xx JSON {"detail": ...} (or a correct 200 where
the input is legitimately odd), never a 5xx or a traceback, and the server keeps serving."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.service.helpers import digit_like, image_bytes

BOMB = image_bytes(np.zeros((20000, 20000), np.uint8), "PNG")  # ~20 KB compressed, 400 Mpixels decoded


def _gif_animated() -> bytes:
    frames = [Image.fromarray(digit_like(40)), Image.fromarray(255 - digit_like(40))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    return buffer.getvalue()


def _rgba() -> bytes:
    a = np.zeros((50, 50, 4), np.uint8)
    a[..., 3] = 0
    a[10:40, 22:28] = (255, 255, 255, 255)
    return image_bytes(a, "PNG")


def raw(data: bytes, content_type: str = "image/png") -> dict:
    return {"content": data, "headers": {"content-type": content_type}}


def upload(data: bytes, field: str = "image", content_type: str = "image/png") -> dict:
    return {"files": {field: ("x", data, content_type)}}


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><circle r="9" cx="14" cy="14"/></svg>'
CASES = [
    # uploads
    ("bomb raw", "POST", "/reconstruct", raw(BOMB), {413}),
    ("bomb multipart", "POST", "/encode", upload(BOMB), {413}),
    ("truncated png", "POST", "/reconstruct", raw(image_bytes(digit_like(64))[:80]), {400}),
    ("zero bytes raw", "POST", "/reconstruct", raw(b""), {400}),
    ("zero bytes multipart", "POST", "/encode", upload(b""), {400, 422}),
    ("animated gif", "POST", "/reconstruct", raw(_gif_animated(), "image/gif"), {200}),
    ("16-bit png", "POST", "/reconstruct", raw(image_bytes(digit_like(64).astype(np.uint16) * 257)), {200}),
    ("cmyk jpeg", "POST", "/reconstruct", raw(image_bytes(digit_like(64), "JPEG", mode="CMYK"), "image/jpeg"), {200}),
    ("rgba transparency", "POST", "/encode", upload(_rgba()), {200}),
    ("1x1 image", "POST", "/reconstruct", raw(image_bytes(np.full((1, 1), 255, np.uint8))), {200}),
    ("all black image", "POST", "/reconstruct", raw(image_bytes(np.zeros((40, 40), np.uint8))), {200}),
    ("svg as image/png", "POST", "/reconstruct", raw(SVG), {400}),
    ("svg media type", "POST", "/reconstruct", raw(SVG, "image/svg+xml"), {415}),
    ("text as image/png", "POST", "/reconstruct", raw(b"hello, I am a PNG"), {400}),
    ("far over size limit", "POST", "/reconstruct", raw(b"\0" * (6 * 1024 * 1024)), {413}),
    ("over limit multipart", "POST", "/encode", upload(b"\0" * (6 * 1024 * 1024)), {413}),
    ("wrong multipart field", "POST", "/reconstruct", upload(image_bytes(digit_like()), field="file"), {422}),
    ("multipart without boundary", "POST", "/reconstruct", raw(b"--x\r\n", "multipart/form-data"), {400, 422}),
    ("no content type", "POST", "/reconstruct", {"content": image_bytes(digit_like())}, {415}),
    ("json to reconstruct", "POST", "/reconstruct", {"json": {"image": "AAAA"}}, {415}),
    # latents
    ("NaN latent", "POST", "/decode", raw(b'{"model":"gan","latents":[[NaN,0,0,0]]}', "application/json"), {422}),
    ("Infinity latent", "POST", "/decode", raw(b'{"model":"gan","latents":[[Infinity,0,0,0]]}', "application/json"), {422}),
    ("1e30 latent", "POST", "/decode", {"json": {"model": "gan", "latents": [[1e30, 0, 0, 0]]}}, {422}),
    ("1e400 latent", "POST", "/decode", raw(b'{"model":"gan","latents":[[1e400,0,0,0]]}', "application/json"), {422}),
    ("ragged latents", "POST", "/decode", {"json": {"model": "gan", "latents": [[0, 0, 0, 0], [0]]}}, {422}),
    ("wrong-length latent", "POST", "/decode", {"json": {"model": "gan", "latents": [[0] * 17]}}, {422}),
    ("too many latents", "POST", "/decode", {"json": {"model": "gan", "latents": [[0] * 4] * 5000}}, {422}),
    ("string latents", "POST", "/decode", {"json": {"model": "gan", "latents": [["a", "b", "c", "d"]]}}, {422}),
    ("malformed json", "POST", "/decode", raw(b'{"model": "gan", "latents": [[0,', "application/json"), {400, 422}),
    ("invalid utf-8 json", "POST", "/decode", raw(b"\xff\xfe\x00{", "application/json"), {400, 422}),
    ("json array body", "POST", "/decode", {"json": [1, 2, 3]}, {422}),
    ("interpolate 3 latents", "POST", "/interpolate", {"json": {"model": "gan", "latents": [[0] * 4] * 3}}, {422}),
    ("interpolate NaN", "POST", "/interpolate", raw(b'{"model":"gan","latents":[[NaN,0,0,0],[0,0,0,0]]}', "application/json"), {422}),
    # query parameters
    ("n zero", "GET", "/sample?n=0", {}, {422}),
    ("n negative", "GET", "/sample?n=-5", {}, {422}),
    ("n float", "GET", "/sample?n=1.5", {}, {422}),
    ("n huge", "GET", "/sample?n=99999999999999999999999", {}, {422}),
    ("seed negative", "GET", "/sample?seed=-1", {}, {422}),
    ("seed text", "GET", "/sample?seed=abc", {}, {422}),
    ("seed 2^64", "GET", "/sample?seed=18446744073709551616", {}, {422}),
    ("steps zero", "GET", "/interpolate?steps=0", {}, {422}),
    ("steps huge", "GET", "/interpolate?steps=100000", {}, {422}),
    ("scale zero", "GET", "/sample?scale=0", {}, {422}),
    ("scale huge", "GET", "/sample?scale=100000", {}, {422}),
    ("scale times n", "GET", "/sample?n=1024&scale=16", {}, {422}),
    ("digit 10", "GET", "/sample?digit=10", {}, {422}),
    ("digit text", "GET", "/sample?digit=seven", {}, {422}),
    ("unknown model", "GET", "/sample?model=stylegan", {}, {404}),
    ("path-like model", "GET", "/sample?model=../../etc/passwd", {}, {404}),
    ("absolute path model", "GET", "/sample?model=/work/main/models/weights/gan", {}, {404}),
    ("model in path", "GET", "/models/..%2F..%2Fetc%2Fpasswd", {}, {404}),
    ("empty model", "GET", "/sample?model=", {}, {422}),
    ("long model name", "GET", "/sample?model=" + "a" * 5000, {}, {422}),
    ("very long query", "GET", "/sample?junk=" + "x" * 60000, {}, {200}),
    ("classifier as generator", "GET", "/sample?model=classifier", {}, {422}),
    ("gan as vae", "POST", "/encode?model=gan", raw(image_bytes(digit_like())), {422}),
    ("format unknown", "GET", "/sample?format=exe", {}, {422}),
    ("method unknown", "GET", "/interpolate?method=bezier", {}, {422}),
    ("unknown path", "GET", "/admin", {}, {404}),
    ("wrong method", "DELETE", "/sample", {}, {405}),
]


@pytest.mark.parametrize("name, method, path, kwargs, expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_request(client, name, method, path, kwargs, expected):
    r = client.request(method, path, **kwargs)
    assert r.status_code in expected, (name, r.status_code, r.text[:300])
    assert r.status_code < 500
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/json")
        assert "detail" in r.json()
        assert "Traceback" not in r.text and "/work/" not in r.text and ".py" not in r.text
    assert client.get("/healthz").status_code == 200


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


def test_pillow_bomb_guard_follows_settings(tiny_weights):
    from tests.conftest import make_client
    with make_client(tiny_weights, max_image_pixels=100 * 100) as c:
        small = image_bytes(digit_like(90))
        large = image_bytes(digit_like(120))
        assert c.post("/reconstruct", content=small, headers={"content-type": "image/png"}).status_code == 200
        r = c.post("/reconstruct", content=large, headers={"content-type": "image/png"})
        assert r.status_code == 413 and "10000 pixels" in json.dumps(r.json())
