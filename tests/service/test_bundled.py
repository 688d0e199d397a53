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
        built = models[name]["kind"] == "vae" and models[name]["recipe"].get("teacher")  # vae-exemplar: no training
        assert models[name]["epochs"] >= (0 if built else 1)
        assert models[name]["device"] == "cpu"
    assert models["classifier"]["metrics"]["test_accuracy"] >= 0.99


@pytest.mark.parametrize("model", ["gan", "vae", "vae-normal", "vae-exemplar", "gan-seed", "vae-seed"])
def test_bundled_samples(bundled_client, model):
    r = bundled_client.get("/sample", params={"model": model, "n": 16, "seed": 0, "format": "npy"})
    images = np.load(io.BytesIO(r.content))
    assert images.shape == (16, 28, 28)
    # digits: a dark background and some bright ink
    assert images[:, 0, :].mean() < 40 and images.max() > 200


def test_the_default_dataset_is_labelled_by_class_and_the_bundled_classifier_agrees(bundled_client):
    """vae-exemplar's labels are the classes asked for, in equal shares; its digits are those digits."""
    from models import load
    from tests.conftest import BUNDLED
    r = bundled_client.get("/dataset", params={"n": 500, "seed": 1})
    assert r.headers["x-model"] == "vae-exemplar" and r.headers["x-class-shares"] == "equal"
    data = np.load(io.BytesIO(r.content))
    assert np.bincount(data["labels"]).tolist() == [50] * 10
    classifier = load(BUNDLED / "classifier.safetensors").module.eval()
    images = torch.from_numpy(data["images"]).float().div(255).unsqueeze(1)
    with torch.no_grad():
        agree = (classifier(images).argmax(1).numpy() == data["labels"]).mean()
    # as often as evaluate measured on 10,000 of them (the card's class_agreement), within sampling noise
    measured = load(BUNDLED / "vae-exemplar.safetensors").card["metrics"]["class_agreement"]
    assert agree > measured - 0.03 and measured > 0.9
    conditional = {m["name"] for m in bundled_client.get("/models").json()["models"] if m["conditional"]}
    assert {"vae-exemplar", "gan", "gan-wide"} <= conditional and "vae" not in conditional


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
