"""Models of two datasets served side by side: each is judged by its own dataset's classifier
(digit=/label=, verified sets, predicted classes), and /models says what its classes are."""
import io
import shutil

import numpy as np
import pytest
import torch

from models import ClassifierConfig, DigitClassifier, Generator, GeneratorConfig, save
from tests.conftest import make_client

FASHION_CARD = {"preset": "tiny", "metrics": {}, "data": {"dataset": "Fashion-MNIST"}}
MNIST_CARD = {"preset": "tiny", "metrics": {}, "data": {"dataset": "MNIST"}}


def sure_of(label: int) -> DigitClassifier:
    """A classifier certain that every image is class `label` (zero weights, one large bias)."""
    config = ClassifierConfig(channels=(4, 8), feature_dim=16)
    classifier = DigitClassifier(config).eval()
    head = classifier.head[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-30.0)
        head.bias[label] = 30.0
    return classifier


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-datasets")
    torch.manual_seed(0)
    config = GeneratorConfig(latent_dim=4, arch="dcgan", hidden_dim=8, output="tanh", num_classes=10)
    classifier_config = ClassifierConfig(channels=(4, 8), feature_dim=16)
    save(Generator(config).eval(), config, MNIST_CARD, folder / "gan.safetensors")
    save(Generator(config).eval(), config, FASHION_CARD, folder / "fashion-gan.safetensors")
    save(sure_of(3), classifier_config, MNIST_CARD, folder / "classifier.safetensors")
    save(sure_of(7), classifier_config, FASHION_CARD, folder / "fashion-classifier.safetensors")
    return folder


@pytest.fixture(scope="module")
def client(weights):
    with make_client(weights) as c:
        yield c


def test_models_name_their_dataset_classes_and_judge(client):
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["fashion-gan"]["dataset"] == "Fashion-MNIST"
    assert models["fashion-gan"]["classes"][7] == "Sneaker" and len(models["fashion-gan"]["classes"]) == 10
    assert models["fashion-gan"]["classifier"] == "fashion-classifier"
    assert models["gan"]["dataset"] == "MNIST" and models["gan"]["classes"][7] == "7"
    assert models["gan"]["classifier"] == "classifier"
    assert models["fashion-classifier"]["classifier"] is None  # classifiers are not judged


def test_label_samples_are_judged_by_their_datasets_classifier(client):
    # the MNIST judge only ever sees a 3, the fashion judge only a 7 (Sneaker)
    assert client.get("/sample?model=gan&digit=3&seed=1").status_code == 200
    assert client.get("/sample?model=gan&digit=7&seed=1").json()["code"] == "digit_not_found"
    assert client.get("/sample?model=fashion-gan&label=7&seed=1").status_code == 200
    assert client.get("/sample?model=fashion-gan&label=3&seed=1").json()["code"] == "digit_not_found"
    samples = client.get("/sample?model=fashion-gan&n=3&seed=2&format=json").json()["samples"]
    assert [s["digit"] for s in samples] == [7, 7, 7]


def test_label_is_digit_by_another_name(client):
    by_label = client.get("/sample?model=fashion-gan&label=7&n=4&seed=5")
    by_digit = client.get("/sample?model=fashion-gan&digit=7&n=4&seed=5")
    assert by_label.status_code == 200 and by_label.content == by_digit.content
    assert by_label.headers["etag"] == by_digit.headers["etag"]
    assert client.get("/sample?model=fashion-gan&label=7&digit=7&n=4&seed=5").content == by_label.content
    clash = client.get("/sample?model=fashion-gan&label=7&digit=3")
    assert clash.status_code == 422 and clash.json()["code"] == "invalid_parameters"
    assert "give one of them" in clash.text


def test_a_verified_fashion_set_is_checked_by_the_fashion_classifier(client):
    plain = client.get("/dataset?model=fashion-gan&labels=7&n=50&seed=3")
    verified = client.get("/dataset?model=fashion-gan&labels=7&n=50&seed=3&verified=true")
    assert verified.headers["x-labels-verified"] == "true"
    # the fashion judge agrees with every 7: nothing is redrawn (MNIST's judge, sure of 3, would redraw all)
    assert np.array_equal(np.load(io.BytesIO(plain.content))["images"], np.load(io.BytesIO(verified.content))["images"])


def test_a_model_whose_classifier_is_missing_is_not_judged_by_another(tmp_path, weights):
    folder = tmp_path / "w"
    shutil.copytree(weights, folder)
    for suffix in (".safetensors", ".json"):
        (folder / f"fashion-classifier{suffix}").unlink(missing_ok=True)
    with make_client(folder) as c:
        response = c.get("/sample?model=fashion-gan&label=7&seed=1")
        assert response.status_code == 422 and response.json()["code"] == "no_classifier"
        assert "Fashion-MNIST (fashion-classifier)" in response.json()["detail"]
        assert c.get("/sample?model=gan&digit=3&seed=1").status_code == 200
        assert c.get("/models/fashion-gan").json()["classifier"] is None


def test_each_dataset_has_its_own_default_label_confidence(weights):
    with make_client(weights) as c:
        inference = c.app.state.inference
        models = inference.registry.models
        assert inference.min_confidence(models["gan"]) == 0.999
        assert inference.min_confidence(models["fashion-gan"]) == 0.9  # at 0.999 no real Coat would pass
    with make_client(weights, digit_min_confidence=0.5) as c:
        inference = c.app.state.inference
        assert {inference.min_confidence(m) for m in inference.registry.models.values()} == {0.5}
