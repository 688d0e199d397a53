"""The bundled Fashion-MNIST models: served beside the digits, judged by their own classifier."""
import io

import numpy as np
import pytest
import torch

from tests.conftest import BUNDLED

FASHION = ("fashion-gan", "fashion-vae", "fashion-gan-seed", "fashion-vae-seed")


def test_fashion_models_say_what_they_are(bundled_client):
    models = {m["name"]: m for m in bundled_client.get("/models").json()["models"]}
    for name in (*FASHION, "fashion-classifier"):
        assert models[name]["dataset"] == "Fashion-MNIST", name
        assert models[name]["classes"][9] == "Ankle boot"
    for name in FASHION:
        assert models[name]["classifier"] == "fashion-classifier"
    assert models["gan"]["classifier"] == "classifier" and models["gan"]["classes"][9] == "9"
    assert models["fashion-classifier"]["metrics"]["test_accuracy"] >= 0.9


@pytest.mark.parametrize("model", FASHION)
def test_bundled_fashion_samples_are_clothes_on_black(bundled_client, model):
    r = bundled_client.get("/sample", params={"model": model, "n": 16, "seed": 0, "format": "npy"})
    images = np.load(io.BytesIO(r.content))
    assert images.shape == (16, 28, 28)
    assert images[:, :, 0].mean() < 60 and images.max() > 150  # a dark surround, some bright cloth


def test_bundled_fashion_gan_label_sampling_gives_the_class(bundled_client):
    from models import load
    judge = load(BUNDLED / "fashion-classifier.safetensors").module
    r = bundled_client.get("/sample", params={"model": "fashion-gan", "label": 7, "n": 8, "seed": 1, "format": "npy"})
    assert r.status_code == 200
    images = torch.from_numpy(np.load(io.BytesIO(r.content))).float().div(255).unsqueeze(1)
    assert (judge(images).argmax(1) == 7).all()  # Sneaker, by the fashion classifier


def test_a_verified_fashion_set_has_equal_shares_of_every_class(bundled_client):
    r = bundled_client.get("/dataset", params={"model": "fashion-gan", "n": 200, "seed": 0, "verified": "true"})
    assert r.status_code == 200 and r.headers["x-labels-verified"] == "true"
    labels = np.load(io.BytesIO(r.content))["labels"]
    assert np.bincount(labels, minlength=10).tolist() == [20] * 10
