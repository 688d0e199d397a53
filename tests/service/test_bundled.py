"""The bundled, trained weights: every model loads and produces sensible digits."""
import io

import numpy as np
import pytest
import torch

from tests.conftest import BUNDLED_NAMES


def test_every_bundled_model_is_listed(bundled_client):
    models = {m["name"]: m for m in bundled_client.get("/models").json()["models"]}
    assert set(BUNDLED_NAMES) <= set(models)
    for name in BUNDLED_NAMES:
        assert len(models[name]["weights_sha256"]) == 64
        assert models[name]["epochs"] >= 1
        assert models[name]["device"] == "cpu"
    assert models["classifier"]["metrics"]["test_accuracy"] >= 0.99


@pytest.mark.parametrize("model", ["gan", "vae", "vae-normal", "gan-seed", "vae-seed"])
def test_bundled_samples(bundled_client, model):
    r = bundled_client.get("/sample", params={"model": model, "n": 16, "seed": 0, "format": "npy"})
    images = np.load(io.BytesIO(r.content))
    assert images.shape == (16, 28, 28)
    # digits: a dark background and some bright ink
    assert images[:, 0, :].mean() < 40 and images.max() > 200


def test_bundled_gan_digit_sampling_gives_the_digit(bundled_client):
    from models import load
    from tests.conftest import BUNDLED
    classifier = load(BUNDLED / "classifier.safetensors").module
    r = bundled_client.get("/sample", params={"model": "gan", "digit": 7, "n": 8, "seed": 1, "format": "npy"})
    assert r.status_code == 200
    images = torch.from_numpy(np.load(io.BytesIO(r.content))).float().div(255).unsqueeze(1)
    assert (classifier(images).argmax(1) == 7).all()


def test_bundled_vae_reconstructs_its_own_samples(bundled_client):
    sample = bundled_client.get("/sample", params={"model": "vae", "seed": 3}).content
    r = bundled_client.post("/reconstruct", params={"model": "vae"}, content=sample,
                            headers={"content-type": "image/png"})
    from PIL import Image
    a = np.asarray(Image.open(io.BytesIO(sample)), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(r.content)), dtype=float)
    assert np.abs(a - b).mean() < 25  # grey levels out of 255
