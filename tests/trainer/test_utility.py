"""The utility score (CAS): a classifier trained on what /dataset serves, tested on real digits."""
import json

import torch

from models import ClassifierConfig, DigitClassifier, Generator, GeneratorConfig, save
from models import dataset
from trainer import utility
from trainer.data import synthetic_mnist


def _weights(folder):
    torch.manual_seed(0)
    card = {"preset": "tiny", "metrics": {}}
    gan = GeneratorConfig(latent_dim=4, arch="dcgan", hidden_dim=8, output="tanh", num_classes=10)
    mlp = GeneratorConfig(latent_dim=4, hidden_dim=16, output="sigmoid")
    save(Generator(gan).eval(), gan, card, folder / "gan.safetensors")
    save(Generator(mlp).eval(), mlp, card, folder / "gan-seed.safetensors")
    cfg = ClassifierConfig(channels=(4, 8), feature_dim=16)
    save(DigitClassifier(cfg).eval(), cfg, card, folder / "classifier.safetensors")
    return folder


def test_the_synthetic_set_is_what_the_service_serves(tmp_path, monkeypatch):
    """run_utility trains on dataset.make(...): the same function behind GET /dataset."""
    weights = _weights(tmp_path)
    seen = {}

    def fake_train(images, labels, data, *, seed, device, progress=False, recipe="classifier"):
        seen[len(seen)] = (images.clone(), labels.clone())
        return 0.5 + 0.1 * len(seen)

    monkeypatch.setattr(utility, "test_accuracy_when_trained_on", fake_train)
    data = synthetic_mnist(n_train=300, n_test=50)
    out = tmp_path / "metrics.json"
    out.write_text(json.dumps({"n": 10, "models": {"kept": 1}}))
    result = utility.run_utility(weights_dir=weights, out=out, n=200, seed=3, device="cpu", data=data, progress=False)
    real_images, real_labels = seen[0]
    assert torch.equal(real_labels, torch.cat([data.train_labels, data.val_labels])[:200])
    from models.checkpoint import load
    module = load(weights / "gan.safetensors").module
    want_images, want_labels = dataset.make(module, 200, 3)
    assert torch.equal(seen[1][0], want_images.reshape(200, 28, 28)) and torch.equal(seen[1][1], want_labels)
    assert result["real"]["test_accuracy"] == 0.6
    assert result["models"]["gan"]["label_source"] == "generator"
    assert result["models"]["gan-seed"]["label_source"] == "classifier"
    document = json.loads(out.read_text())
    assert document["models"] == {"kept": 1} and document["utility"]["n"] == 200  # other keys kept
    card = json.loads((weights / "gan.json").read_text())
    assert card["metrics"]["utility_cas"] == result["models"]["gan"]["test_accuracy"]
    assert card["metrics"]["utility_real_baseline"] == 0.6 and card["metrics"]["utility_n"] == 200


def test_a_classifier_really_learns_from_the_given_set():
    """The real training path, tiny: separable fake digits (class c lights up its own 8x4 patch, patches
    further apart than the recipe's +-2 px shifts) are learnt."""
    def fake_digits(n):
        labels = torch.arange(n) % 10
        images = torch.zeros(n, 28, 28, dtype=torch.uint8)
        for c in range(10):
            row, col = 2 + 14 * (c // 5), 1 + 5 * (c % 5)
            images[labels == c, row:row + 8, col:col + 4] = 255
        return images, labels

    data = synthetic_mnist(n_train=400, n_test=200)
    images, labels = fake_digits(400)
    data.test_images, data.test_labels = fake_digits(200)
    accuracy = utility.test_accuracy_when_trained_on(images, labels, data, seed=0, device=torch.device("cpu"))
    assert accuracy > 0.9
    shuffled = utility.test_accuracy_when_trained_on(images, labels[torch.randperm(400)], data, seed=0,
                                                      device=torch.device("cpu"))
    assert shuffled < 0.5  # labels that mean nothing teach nothing


def test_the_report_shows_the_utility_table_and_the_gan_target():
    from trainer.report import _targets, _utility_table
    metrics = {"utility": {"protocol": "CAS.", "n": 60000, "seed": 0, "device": "cpu",
                           "real": {"test_accuracy": 0.991},
                           "models": {"gan": {"test_accuracy": 0.9812, "label_source": "generator"},
                                      "vae": {"test_accuracy": 0.95, "label_source": "classifier"}}}}
    metrics["utility_verified"] = {"n": 60000, "seed": 0, "real": {"test_accuracy": 0.992},
                                   "models": {"gan": {"test_accuracy": 0.9795, "label_source": "generator"}}}
    seeds = {"utility": {"seed": 1, "real": {"test_accuracy": 0.993},
                         "models": {"gan": {"test_accuracy": 0.9770, "label_source": "generator"}}}}
    table = _utility_table(metrics, seeds)
    assert "| *60,000 real MNIST images* | the dataset's | 99.10 % | — |" in table
    assert "| 60,000 images of gan (`/dataset?model=gan`) | the class asked for | 98.12 % | -0.98 points |" in table
    assert "the bundled classifier | 95.00 %" in table
    # a verified row is compared with its own run's real-data figure
    assert ("| 60,000 images of gan (`/dataset?model=gan&verified=true`) | the class asked for, checked by the "
            "classifier | 97.95 % | -1.25 points |") in table
    assert "| real images | 99.10 % | 99.30 % | 99.20 % |" in table and "| gan, plain | 98.12 % | 97.70 % |" in table
    targets = _targets(metrics)
    assert ("gan utility (CAS, `/dataset?model=gan`) ≥ 98.0 %", "98.12 %", True) in targets
    assert ("gan utility (CAS, `/dataset?model=gan&verified=true`) ≥ 98.0 %", "97.95 %", False) in targets
    assert "No utility scores yet" in _utility_table({})


def test_the_verified_score_trains_on_the_verified_sequence(tmp_path, monkeypatch):
    """verified=True trains on dataset.make(..., verified=True) (what /dataset?verified=true serves),
    skips models without classes, and writes utility_cas_verified without touching utility_cas."""
    weights = _weights(tmp_path)
    seen = []

    def fake_train(images, labels, data, *, seed, device, progress=False, recipe="classifier"):
        seen.append((images.clone(), labels.clone()))
        return 0.9

    monkeypatch.setattr(utility, "test_accuracy_when_trained_on", fake_train)
    out = tmp_path / "metrics.json"
    result = utility.run_utility(weights_dir=weights, out=out, n=300, seed=2, device="cpu", progress=False,
                                 data=synthetic_mnist(n_train=300, n_test=50), verified=True)
    from models.checkpoint import load
    module = load(weights / "gan.safetensors").module
    classifier = load(weights / "classifier.safetensors").module
    want_images, want_labels = dataset.make(module, 300, 2, classifier=classifier, verified=True)
    assert list(result["models"]) == ["gan"] and len(seen) == 2  # real, then gan only
    assert torch.equal(seen[1][0], want_images.reshape(300, 28, 28)) and torch.equal(seen[1][1], want_labels)
    plain_images, _ = dataset.make(module, 300, 2)
    assert not torch.equal(want_images, plain_images)  # random weights: many items were redrawn
    assert "utility_verified" in json.loads(out.read_text())
    metrics = json.loads((weights / "gan.json").read_text())["metrics"]
    assert metrics["utility_cas_verified"] == 0.9 and "utility_cas" not in metrics


def test_a_run_for_named_models_keeps_the_real_baseline_measured_the_same_way(tmp_path, monkeypatch):
    """The real-data baseline does not depend on the models: a later run for some models reuses it
    (same dataset, n, seed, device), a run with other settings or fresh_baseline=True measures it."""
    weights = _weights(tmp_path)
    calls = []

    def fake_train(images, labels, data, *, seed, device, progress=False, recipe="classifier"):
        calls.append(len(images))
        return 0.5 + 0.01 * len(calls)

    monkeypatch.setattr(utility, "test_accuracy_when_trained_on", fake_train)
    data = synthetic_mnist(n_train=300, n_test=50)
    out = tmp_path / "metrics.json"
    first = utility.run_utility(weights_dir=weights, out=out, n=200, seed=3, device="cpu", data=data, progress=False)
    assert len(calls) == 3  # real, gan, gan-seed
    again = utility.run_utility(weights_dir=weights, out=out, models=["gan"], n=200, seed=3, device="cpu", data=data,
                                progress=False, verified=True)
    assert len(calls) == 4 and again["real"] == first["real"]  # only the verified gan was trained
    other_seed = utility.run_utility(weights_dir=weights, out=out, models=["gan"], n=200, seed=4, device="cpu",
                                     data=data, progress=False)
    assert len(calls) == 6 and other_seed["real"] != first["real"]
    utility.run_utility(weights_dir=weights, out=out, models=["gan"], n=200, seed=4, device="cpu", data=data,
                        progress=False, fresh_baseline=True)
    assert len(calls) == 8
