import io

import numpy as np

from tests.service.helpers import PNG_SIGNATURE, png_size


def test_single_png_with_seed_header(client):
    r = client.get("/sample", params={"model": "gan"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG_SIGNATURE)
    assert png_size(r.content) == (28, 28)
    assert int(r.headers["x-seed"]) >= 0


def test_same_seed_same_bytes_and_other_seed_differs(client):
    a = client.get("/sample", params={"model": "gan", "seed": 42, "n": 3})
    b = client.get("/sample", params={"model": "gan", "seed": 42, "n": 3})
    c = client.get("/sample", params={"model": "gan", "seed": 43, "n": 3})
    assert a.headers["x-seed"] == "42"
    assert a.content == b.content
    assert a.content != c.content


def test_grid_and_scale(client):
    r = client.get("/sample", params={"model": "vae", "n": 10, "nrow": 5, "scale": 2})
    # make_grid: 2-px gutters around every 28-px cell
    assert png_size(r.content) == ((5 * 30 + 2) * 2, (2 * 30 + 2) * 2)
    single = client.get("/sample", params={"model": "vae", "scale": 3})
    assert png_size(single.content) == (84, 84)


def test_npy_bulk(client):
    r = client.get("/sample", params={"model": "gan", "n": 50, "format": "npy", "seed": 7})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
    array = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert array.shape == (50, 28, 28) and array.dtype == np.uint8


def test_json_has_images_latents_and_predictions(client):
    r = client.get("/sample", params={"model": "vae", "n": 2, "format": "json", "seed": 1})
    body = r.json()
    assert body["seed"] == 1 and body["n"] == 2 and body["latent_dim"] == 4
    assert len(body["samples"]) == 2
    for item in body["samples"]:
        assert len(item["latent"]) == 4
        assert 0 <= item["digit"] <= 9 and 0 <= item["confidence"] <= 1
        import base64
        assert base64.b64decode(item["png_base64"]).startswith(PNG_SIGNATURE)


def test_png_json_and_npy_agree(client):
    import base64
    from PIL import Image
    npy = np.load(io.BytesIO(client.get("/sample", params={"model": "gan", "seed": 5, "format": "npy"}).content))
    png = np.asarray(Image.open(io.BytesIO(client.get("/sample", params={"model": "gan", "seed": 5}).content)))
    item = client.get("/sample", params={"model": "gan", "seed": 5, "format": "json"}).json()["samples"][0]
    from_json = np.asarray(Image.open(io.BytesIO(base64.b64decode(item["png_base64"]))))
    assert np.array_equal(npy[0], png) and np.array_equal(png, from_json)


def test_errors(client):
    cases = [
        ({"model": "nope"}, 404), ({"model": "../models/weights/gan"}, 404), ({"model": "classifier"}, 422),
        ({"n": 0}, 422), ({"n": "abc"}, 422), ({"n": 10**9}, 422), ({"seed": -1}, 422), ({"seed": 2**64}, 422),
        ({"digit": 10}, 422), ({"format": "gif"}, 422), ({"scale": 0}, 422), ({"scale": 1000}, 422),
        ({"n": 4096, "scale": 16}, 422),
    ]
    for params, status in cases:
        r = client.get("/sample", params=params)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"] == "application/json"
        assert "detail" in r.json()
        assert "Traceback" not in r.text


def test_digit_sampling_that_cannot_be_met_is_a_clear_422(client):
    # the tiny random classifier is never >= 90 % sure, so no sample qualifies
    r = client.get("/sample", params={"model": "gan", "digit": 3, "n": 2, "seed": 0})
    assert r.status_code == 422
    assert "digit 3" in r.json()["detail"]
