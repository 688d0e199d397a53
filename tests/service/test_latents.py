import io

import numpy as np

from tests.service.helpers import digit_like, image_bytes, png_size


def test_decode_formats(client):
    latents = [[0.0, 0.5, -0.25, 0.75], [1.0, 1.0, 1.0, 1.0]]
    r = client.post("/decode", json={"model": "gan", "latents": latents})
    assert r.status_code == 200 and png_size(r.content) == (2 * 30 + 2, 32)
    npy = np.load(io.BytesIO(client.post("/decode", json={"model": "gan", "latents": latents, "format": "npy"}).content))
    assert npy.shape == (2, 28, 28)
    body = client.post("/decode", json={"model": "vae", "latents": latents, "format": "json"}).json()
    assert [s["latent"] for s in body["samples"]] == latents


def test_decode_matches_sample_latents(client):
    sampled = client.get("/sample", params={"model": "gan", "seed": 9, "format": "json"}).json()["samples"][0]
    decoded = client.post("/decode", json={"model": "gan", "latents": [sampled["latent"]], "format": "json"}).json()
    assert decoded["samples"][0]["png_base64"] == sampled["png_base64"]


def test_decode_errors(client):
    bad = [
        {"model": "gan", "latents": [[0, 0, 0]]},  # wrong length
        {"model": "gan", "latents": [[0, 0, 0, 0], [0, 0]]},  # ragged
        {"model": "gan", "latents": [[1e30, 0, 0, 0]]},  # absurd magnitude
        {"model": "gan", "latents": []},
        {"model": "gan", "latents": "zero"},
        {"model": "gan", "latents": [[0, 0, 0, 0]], "format": "bmp"},
        {"model": "classifier", "latents": [[0, 0, 0, 0]]},
    ]
    for body in bad:
        r = client.post("/decode", json=body)
        assert r.status_code == 422, (body, r.text)
    for literal in ("NaN", "Infinity", "-Infinity"):
        r = client.post("/decode", content='{"model": "gan", "latents": [[%s, 0, 0, 0]]}' % literal,
                        headers={"content-type": "application/json"})
        assert r.status_code == 422, literal
    assert client.post("/decode", content="{not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/decode", json={"model": "zzz", "latents": [[0, 0, 0, 0]]}).status_code == 404


def test_interpolate_get(client):
    r = client.get("/interpolate", params={"model": "gan", "seed_a": 1, "seed_b": 2, "steps": 6})
    assert r.status_code == 200 and png_size(r.content) == (6 * 30 + 2, 32)
    assert r.headers["x-seed-a"] == "1" and r.headers["x-seed-b"] == "2"
    body = client.get("/interpolate", params={"model": "gan", "seed_a": 1, "seed_b": 2, "steps": 6,
                                              "format": "json"}).json()
    # the end points are the latents /sample uses for those seeds
    first = client.get("/sample", params={"model": "gan", "seed": 1, "format": "json"}).json()["samples"][0]
    assert np.allclose(body["latents"][0], first["latent"], atol=1e-6)
    assert body["images_png_base64"][0] == first["png_base64"]
    # slerp keeps the norm of equal-norm end points roughly; lerp does not matter here: both valid
    lerp = client.get("/interpolate", params={"model": "gan", "seed_a": 1, "seed_b": 2, "steps": 6,
                                              "method": "lerp", "format": "json"}).json()
    assert lerp["latents"] != body["latents"]


def test_interpolate_post_latents_and_images(client):
    r = client.post("/interpolate", json={"model": "vae", "latents": [[0, 0, 0, 0], [1, 1, 1, 1]], "steps": 3,
                                          "format": "json"})
    body = r.json()
    assert r.status_code == 200 and len(body["latents"]) == 3
    assert np.allclose(body["latents"][1], [0.5] * 4, atol=1e-6) or body["method"] == "slerp"
    files = {"image_a": ("a.png", image_bytes(digit_like()), "image/png"),
             "image_b": ("b.png", image_bytes(np.rot90(digit_like()).copy()), "image/png")}
    r = client.post("/interpolate", params={"steps": 4}, files=files)
    assert r.status_code == 200 and png_size(r.content) == (4 * 30 + 2, 32)


def test_interpolate_errors(client):
    assert client.get("/interpolate", params={"steps": 1}).status_code == 422
    assert client.get("/interpolate", params={"steps": 10**6}).status_code == 422
    assert client.get("/interpolate", params={"method": "cubic"}).status_code == 422
    assert client.get("/interpolate", params={"model": "classifier"}).status_code == 422
    assert client.post("/interpolate", json={"model": "gan", "latents": [[0, 0, 0, 0]]}).status_code == 422
    assert client.post("/interpolate", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    files = {"image_a": ("a.png", image_bytes(digit_like()), "image/png")}
    assert client.post("/interpolate", files=files).status_code == 422  # image_b missing
    files["image_b"] = files["image_a"]
    assert client.post("/interpolate", params={"model": "gan"}, files=files).status_code == 422
