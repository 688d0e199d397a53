import numpy as np
import pytest

from tests.service.helpers import digit_like, image_bytes, png_size


def post_image(client, path, data, content_type="image/png", field="image", **params):
    if content_type == "multipart":
        return client.post(path, params=params, files={field: ("d.png", data, "image/png")})
    return client.post(path, params=params, content=data, headers={"content-type": content_type})


@pytest.mark.parametrize("how", ["multipart", "image/png"])
def test_reconstruct_multipart_and_raw(client, how):
    r = post_image(client, "/reconstruct", image_bytes(digit_like()), how)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert png_size(r.content) == (28, 28)


def test_reconstruct_side_by_side_and_scale(client):
    r = post_image(client, "/reconstruct", image_bytes(digit_like()), side_by_side="true", scale=2)
    assert png_size(r.content) == ((2 * 30 + 2) * 2, 32 * 2)


def test_reconstruct_is_deterministic(client):
    data = image_bytes(digit_like(100), "JPEG")
    a = post_image(client, "/reconstruct", data, "image/jpeg")
    b = post_image(client, "/reconstruct", data, "image/jpeg")
    assert a.status_code == 200 and a.content == b.content


def test_encode_returns_latents(client):
    r = post_image(client, "/encode", image_bytes(digit_like()), "multipart", seed=4)
    body = r.json()
    assert r.status_code == 200
    assert body["model"] == "vae" and body["latent_dim"] == 4 and body["seed"] == 4
    assert len(body["mu"]) == len(body["logvar"]) == len(body["z"]) == 4
    again = post_image(client, "/encode", image_bytes(digit_like()), "multipart", seed=4).json()
    assert again == body


def test_invert_matters_for_dark_on_light(client):
    dark_on_light = image_bytes(digit_like(64, invert=True))
    plain = client.post("/encode", params={"seed": 0}, files={"image": ("a.png", dark_on_light, "image/png")}).json()
    inverted = client.post("/encode", params={"seed": 0, "invert": "true"},
                           files={"image": ("a.png", dark_on_light, "image/png")}).json()
    light_on_dark = client.post("/encode", params={"seed": 0},
                                files={"image": ("a.png", image_bytes(digit_like(64)), "image/png")}).json()
    assert np.allclose(inverted["mu"], light_on_dark["mu"], atol=1e-5)
    assert not np.allclose(plain["mu"], light_on_dark["mu"], atol=1e-3)


def test_upload_errors(client):
    assert post_image(client, "/reconstruct", b"not an image at all").status_code == 400
    assert post_image(client, "/reconstruct", b"").status_code == 400
    assert post_image(client, "/reconstruct", image_bytes(digit_like()), "text/plain").status_code == 415
    assert post_image(client, "/reconstruct", image_bytes(digit_like()), "multipart", field="file").status_code == 422
    assert post_image(client, "/reconstruct", image_bytes(digit_like()), model="gan").status_code == 422
    assert post_image(client, "/reconstruct", image_bytes(digit_like()), model="nope").status_code == 404
    assert post_image(client, "/encode", b"\x89PNG\r\n\x1a\n" + b"\0" * 50).status_code == 400


def test_upload_over_the_limit_is_413(tiny_weights):
    from tests.conftest import make_client
    with make_client(tiny_weights, max_upload_bytes=2048) as small:
        big = np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)
        r = small.post("/reconstruct", content=image_bytes(big), headers={"content-type": "image/png"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = small.post("/reconstruct", files={"image": ("a.png", image_bytes(big), "image/png")})
        assert r.status_code == 413
        assert small.get("/healthz").status_code == 200
