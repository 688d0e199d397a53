"""The utility score (CAS): a classifier trained on what /dataset serves, tested on real digits."""
import json

import pytest
import torch

from models import ClassifierConfig, DigitClassifier, Generator, GeneratorConfig, save
from models import synthetic as dataset
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
    """run_utility trains every learner at every seed on dataset.make(...): the function behind GET /dataset."""
    weights = _weights(tmp_path)
    seen = []

    def fake_train(images, labels, data, *, preset, device, progress=False):
        seen.append((preset.name, preset.seed, images.clone(), labels.clone()))
        return 0.5 + 0.001 * len(seen)

    monkeypatch.setattr(utility, "accuracy_when_trained_on", fake_train)
    data = synthetic_mnist(n_train=300, n_test=50)
    out = tmp_path / "metrics.json"
    out.write_text(json.dumps({"n": 10, "models": {"kept": 1}}))
    result = utility.run_utility(weights_dir=weights, out=out, n=200, seeds=(3, 4), device="cpu", data=data,
                                 progress=False)
    # real: each learner at each seed, on the first 200 real training digits
    real = [row for row in seen if torch.equal(row[3], torch.cat([data.train_labels, data.val_labels])[:200])]
    assert {(name, seed) for name, seed, *_ in seen[:6]} == {(l, s) for l in utility.LEARNERS for s in (3, 4)}
    assert len(real) >= 6
    from models.checkpoint import load
    module = load(weights / "gan.safetensors").module
    for seed in (3, 4):
        want_images, want_labels = dataset.make(module, 200, seed)
        trained = [row for row in seen[6:12] if row[1] == seed]
        assert len(trained) == 3 and all(torch.equal(row[2], want_images.reshape(200, 28, 28)) and
                                         torch.equal(row[3], want_labels) for row in trained)
    # the bundled classifier's own recipe, and two learners that differ from it
    assert {row[0] for row in seen} == {"classifier", "cnn-brief", "mlp"}
    assert result["models"]["gan"]["label_source"] == "generator"
    assert result["models"]["gan-seed"]["label_source"] == "classifier"
    gap = result["gaps"]["gan"]["mlp"]
    real_mean = (result["real"]["mlp"]["accuracy"]["3"] + result["real"]["mlp"]["accuracy"]["4"]) / 2
    assert gap["real"] == pytest.approx(real_mean) and gap["gap"] == pytest.approx(100 * (real_mean - gap["mean"]))
    document = json.loads(out.read_text())
    assert document["models"] == {"kept": 1} and document["utility"]["n"] == 200  # other keys kept
    card = json.loads((weights / "gan.json").read_text())
    assert card["metrics"]["utility"]["learners"] == result["gaps"]["gan"]
    assert card["metrics"]["utility_cas"] == pytest.approx(result["gaps"]["gan"]["classifier"]["mean"])


def test_the_curve_trains_on_growing_slices_of_the_same_sequence(tmp_path, monkeypatch):
    """The curve: the cheaper learners on n items of a model for each n, and on real images only up to the
    real training set's size."""
    weights = _weights(tmp_path)
    sizes = []

    def fake_train(images, labels, data, *, preset, device, progress=False):
        sizes.append((preset.name, len(images)))
        return len(images) / 1000

    monkeypatch.setattr(utility, "accuracy_when_trained_on", fake_train)
    data = synthetic_mnist(n_train=300, n_test=50)
    out = tmp_path / "metrics.json"
    result = utility.run_utility(weights_dir=weights, out=out, models=["gan"], n=100, seeds=(1,), device="cpu",
                                 data=data, progress=False, learners=("mlp",), curve_models=("gan",),
                                 curve_sizes=(100, 200, 600))
    rows = result["curve"]["rows"]
    assert set(rows["real"]["mlp"]) == {"100", "200"}  # 600 is more than the 300 + 50 real images
    assert rows["gan"]["mlp"] == {"100": 0.1, "200": 0.2, "600": 0.6}
    assert set(rows["gan"]) == {"weights_sha256", *utility.CURVE_LEARNERS}
    calls = len(sizes)
    utility.run_utility(weights_dir=weights, out=out, models=["gan"], n=100, seeds=(1,), device="cpu", data=data,
                        progress=False, learners=("mlp",), curve_models=("gan",), curve_sizes=(100, 200, 600))
    assert len(sizes) == calls  # everything was measured already: kept


def test_a_run_of_some_learners_or_seeds_keeps_the_rest(tmp_path, monkeypatch):
    """Rows are kept across runs measured the same way: a run for one learner or one more seed trains only
    what is missing, and the means cover every seed the rows hold."""
    weights = _weights(tmp_path)
    calls = []

    def fake_train(images, labels, data, *, preset, device, progress=False):
        calls.append((preset.name, preset.seed))
        return 0.5 + 0.01 * preset.seed

    monkeypatch.setattr(utility, "accuracy_when_trained_on", fake_train)
    data = synthetic_mnist(n_train=300, n_test=50)
    out = tmp_path / "metrics.json"
    common = dict(weights_dir=weights, out=out, models=["gan"], n=100, device="cpu", data=data, progress=False)
    utility.run_utility(**common, seeds=(1,))
    assert len(calls) == 6  # 3 learners: real and gan
    utility.run_utility(**common, seeds=(1,), learners=("mlp",))
    assert len(calls) == 6  # nothing new to measure
    again = utility.run_utility(**common, seeds=(2,), learners=("mlp",))
    assert calls[6:] == [("mlp", 2), ("mlp", 2)]  # real and gan at the new seed only
    assert set(again["real"]) == set(utility.LEARNERS) and again["seeds"] == [1, 2]
    assert again["gaps"]["gan"]["mlp"]["mean"] == pytest.approx(0.515)  # both seeds
    assert again["gaps"]["gan"]["classifier"]["mean"] == pytest.approx(0.51)  # the one it has
    document = json.loads(out.read_text())  # recorded before a field was added to the recipes (at its default)
    for recipe in document["utility"]["recipes"].values():
        del recipe["exemplar_scales"]
    out.write_text(json.dumps(document))
    utility.run_utility(**common, seeds=(1, 2), learners=("mlp",))
    assert len(calls) == 8  # still the same recipes: nothing new to measure
    utility.run_utility(**common, seeds=(1,), fresh_baseline=True)
    assert len(calls) == 11  # the real rows again (3 learners), nothing else
    utility.run_utility(**{**common, "n": 200}, seeds=(1,))
    assert len(calls) == 17  # another n: everything again


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
    images, labels = fake_digits(3000)  # the briefest learner takes 2 epochs: 48 steps
    data.test_images, data.test_labels = fake_digits(200)
    for learner in utility.LEARNERS:
        preset = utility.learner_preset(learner, utility.dataset_named("mnist"), 0)
        accuracy = utility.accuracy_when_trained_on(images, labels, data, preset=preset, device=torch.device("cpu"))
        assert accuracy > 0.9, learner
        shuffled = utility.accuracy_when_trained_on(images, labels[torch.randperm(3000)], data, preset=preset,
                                                    device=torch.device("cpu"))
        assert shuffled < 0.5, learner  # labels that mean nothing teach nothing


def _section(real, models, verified=False):
    """A utility section as run_utility writes it: accuracies per learner and seed."""
    def learners(values):
        return {name: {"accuracy": {"1": a, "2": b}} for name, (a, b) in values.items()}

    section = {"protocol": "CAS.", "dataset": "MNIST", "n": 60000, "seeds": [1, 2], "device": "cpu",
               "learners": {"classifier": "the judge's recipe", "mlp": "an MLP"}, "real": learners(real),
               "models": {name: {"label_source": source, "learners": learners(values)}
                          for name, (source, values) in models.items()}, "curve": {}}
    section["gaps"] = utility.gaps(section)
    return section


def test_the_report_shows_each_learner_with_its_gap_and_the_targets(tmp_path):
    from trainer.report import _utility_table
    from trainer.targets import served
    metrics = {"utility": _section({"classifier": (0.990, 0.992), "mlp": (0.977, 0.979)},
                                   {"gan": ("generator", {"classifier": (0.981, 0.983), "mlp": (0.93, 0.94)}),
                                    "vae-exemplar": ("generator", {"classifier": (0.990, 0.991), "mlp": (0.975, 0.976)}),
                                    "vae": ("classifier", {"classifier": (0.95, 0.95), "mlp": (0.90, 0.90)})}),
               "models": {"vae": {"class_histogram": [0.157] + [0.0937] * 9}}}
    table = _utility_table(metrics, tmp_path)
    assert "| *60,000 real MNIST images* | the dataset's | as in the data | 99.10 ± 0.10 | 97.80 ± 0.10 |" in table
    assert ("| `/dataset?model=gan` | the class asked for | 10 % each (exact) | 98.20 ± 0.10 (gap +0.90) | "
            "93.50 ± 0.50 (gap +4.30) |") in table
    assert "| `/dataset?model=vae` | the bundled classifier | 9.4–15.7 % |" in table
    targets = {label: (value, met) for label, value, met in served(metrics)}
    assert targets["gan utility (CAS, `/dataset?model=gan`) ≥ 98.0 %"] == ("98.20 %", True)
    label = "vae-exemplar (the default /dataset model): gap to real ≤ 0.5 points for every learner"
    assert targets[label] == ("+0.25 (worst of 2)", True)
    assert "No utility scores yet" in _utility_table({})


def test_the_report_draws_the_curve(tmp_path):
    from trainer.report import _utility_table
    section = _section({"mlp": (0.97, 0.97)}, {})
    section["curve"] = {"seed": 1, "learners": ["mlp"], "sizes": [10, 20],
                        "rows": {"real": {"mlp": {"10": 0.9}}, "gan": {"weights_sha256": "x", "mlp": {"10": 0.8, "20": 0.95}}}}
    table = _utility_table({"utility": section}, tmp_path)
    assert "| gan | mlp | 80.00 | 95.00 |" in table and "| real | mlp | 90.00 | — |" in table
    assert (tmp_path / "figures" / "utility_curve.png").stat().st_size > 0
