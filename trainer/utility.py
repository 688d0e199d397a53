"""The utility of a generator: does a classifier trained only on its digits work on real ones?

Classification Accuracy Score (Ravuri & Vinyals, "Classification Accuracy Score for Conditional
Generative Models", NeurIPS 2019), measured with several learners and seeds: each learner is trained
on n synthetic labelled images and tested on the 10,000 real test images of the generator's dataset;
next to it the same learner, recipe and seed trained on n real images (the 60,000 of the dataset's
training file: the train and validation splits together). The gap is real minus synthetic, in points,
per learner, averaged over the seeds (each seed is both the dataset's seed and the learner's).

The synthetic set is exactly what `GET /dataset?model=<name>&seed=<seed>&n=<n>` serves (models/synthetic.py):
for a class-conditional generator, equal shares of each class labelled with the class asked for;
for a model without classes, labels from the bundled classifier. With verified=True it is what
`&verified=true` serves. The learners are of different kinds, so that a set is not judged by one
recipe's tastes: the bundled classifier's own recipe (a CNN with BatchNorm and dropout, 6 epochs,
Adam 1e-3 cosine, +-2 px shifts; Fashion-MNIST's for 10 epochs), a smaller CNN without BatchNorm,
dropout or augmentation trained for 2 epochs, and an MLP trained for 5. The real validation split only
reports progress; nothing is selected on it or on the test set.

The curve: accuracy against the number of synthetic items (the service's data is unlimited, real
MNIST is not), for the cheaper learners and the first seed.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from models import synthetic as sequence  # the labelled sequence /dataset serves
from models.checkpoint import load
from models.classifier import ClassifierConfig, DigitClassifier
from models.datasets import DatasetInfo, dataset_named
from models.devices import resolve_device
from trainer.data import Splits, load_dataset
from trainer.presets import Preset, get_preset, with_defaults
from trainer.targets import UTILITY_JUDGE as JUDGE  # the learner with the dataset's bundled classifier's recipe
from trainer.targets import summary
from trainer.train_classifier import train_classifier

CAS_N = 60_000
SEEDS = (1, 2)
CURVE_SIZES = (10_000, 60_000, 240_000, 600_000)
CURVE_LEARNERS = ("cnn-brief", "mlp")  # the cheap learners: the bundled recipe on 600,000 items costs hours on a CPU
LEARNERS: dict[str, Preset | None] = {
    JUDGE: None,  # the dataset's bundled classifier's preset (classifier, fashion-classifier)
    "cnn-brief": Preset(
        name="cnn-brief", family="classifier", epochs=2, batch_size=128, lr=0.001,
        description="CNN 16-32 channels, 64-d features, no BatchNorm, dropout or augmentation; 2 epochs of Adam 1e-3.",
        classifier=ClassifierConfig(channels=(16, 32), feature_dim=64, dropout=0.0, batchnorm=False)),
    "mlp": Preset(
        name="mlp", family="classifier", epochs=5, batch_size=128, lr=0.001,
        description="MLP 784-256-128-10, no augmentation; 5 epochs of Adam 1e-3.",
        classifier=ClassifierConfig(arch="mlp", hidden_dims=(256,), feature_dim=128, dropout=0.0)),
}


def learner_preset(name: str, info: DatasetInfo, seed: int) -> Preset:
    """The training recipe of learner `name` for a dataset, with `seed`."""
    if name == JUDGE:
        return get_preset(info.classifier, seed=seed)
    if name not in LEARNERS:
        raise KeyError(f"unknown learner {name!r}; choose from {', '.join(LEARNERS)}")
    return dataclasses.replace(LEARNERS[name], seed=seed, dataset=info.key)


def accuracy_when_trained_on(images_u8: torch.Tensor, labels: torch.Tensor, data: Splits, *, preset: Preset,
                             device: torch.device, progress: bool = False) -> float:
    """`preset`'s classifier trained on (images uint8 (n, 28, 28), labels (n,)); its accuracy on data's real
    test set."""
    split = Splits(train_images=images_u8.to(device), train_labels=labels.long().to(device),
                  val_images=data.val_images.to(device), val_labels=data.val_labels.to(device),
                  test_images=data.test_images.to(device), test_labels=data.test_labels.to(device),
                  checksums=data.checksums, title=data.title)
    torch.manual_seed(preset.seed)  # the classifier's initial weights
    model = DigitClassifier(preset.classifier).to(device)
    return train_classifier(model, split, preset, device, progress=progress)["test_accuracy"]


def real_training_set(data: Splits, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = data.training_file()
    return images[:n], labels[:n]


def gaps(section: dict) -> dict[str, dict[str, dict[str, float]]]:
    """model -> learner -> {mean, spread, real, gap}: the gap is the real mean minus the model's, in points."""
    real = {name: summary(row["accuracy"]) for name, row in section.get("real", {}).items()}
    out: dict = {}
    for model, row in section.get("models", {}).items():
        for name, result in row.get("learners", {}).items():
            if name not in real:
                continue
            mine = summary(result["accuracy"])
            out.setdefault(model, {})[name] = {**mine, "real": real[name]["mean"],
                                               "gap": 100 * (real[name]["mean"] - mine["mean"])}
    return out


def _settings(info: DatasetInfo, n: int, device: str) -> dict:
    """What a section's figures depend on besides the models and seeds: every learner's recipe (a run of
    some learners keeps the others' rows), the dataset, n and the device."""
    recipes = {name: learner_preset(name, info, 0).to_dict() | {"seed": None} for name in LEARNERS}
    # as JSON gives them back (tuples become lists), to compare with a section read from the file
    return json.loads(json.dumps({"dataset": info.title, "n": n, "device": device, "recipes": recipes}))


def _kept(section: dict, settings: dict) -> dict:
    """The rows of an earlier section still valid under `settings`: none if the dataset, n or device
    differ; otherwise all but those of learners whose recipe changed (a field added to Preset since, at
    its default, is no change)."""
    if any(section.get(key) != settings[key] for key in ("dataset", "n", "device")):
        return {}
    recorded = {name: json.loads(json.dumps(with_defaults(recipe))) for name, recipe in section.get("recipes", {}).items()}
    changed = {name for name, recipe in settings["recipes"].items() if recorded.get(name) != recipe}
    for rows in [section.get("real", {}), *[row.get("learners", {}) for row in section.get("models", {}).values()],
                 *section.get("curve", {}).get("rows", {}).values()]:
        for name in changed & set(rows):
            del rows[name]
    return section


def _described(name: str, info: DatasetInfo) -> str:
    text = learner_preset(name, info, 0).description
    return f"the bundled classifier's own recipe ({info.classifier}): {text}" if name == JUDGE else text


def _timed(fn, *args, **kwargs) -> tuple[float, float]:
    started = time.perf_counter()
    return fn(*args, **kwargs), round(time.perf_counter() - started, 1)


def run_utility(*, weights_dir: Path, out: Path, models: list[str] | None = None, n: int = CAS_N,
                seeds: tuple[int, ...] = SEEDS, learners: tuple[str, ...] = tuple(LEARNERS), device: str = "auto",
                data_dir: Path | None = None, update_cards: bool = True, data: Splits | None = None,
                progress: bool = True, verified: bool = False, dataset: str = "mnist", fresh_baseline: bool = False,
                curve_models: tuple[str, ...] = (), curve_sizes: tuple[int, ...] = CURVE_SIZES) -> dict:
    """Utility of each generative model in `weights_dir` (default: all) for each learner and seed, and the
    real-data baselines, written under "utility" in `out` (the metrics JSON, other keys kept) and into the
    model cards (metrics.utility). verified=True: the class-conditional models' verified sequences (models
    without classes are skipped: theirs is the plain one), under "utility_verified". dataset: whose models,
    real images and classifier. Rows already in `out` for the same settings (dataset, n, device, recipes)
    are kept: a run for named `models` measures only those and reuses the real baselines, which do not
    depend on the models (fresh_baseline=True measures them again). curve_models: also train the curve
    learners on curve_sizes items of these models (seeds[0]), and on the real sizes up to the 60,000."""
    from trainer.evaluate import models_of

    device = resolve_device(device)
    info = dataset_named(dataset)
    data = data if data is not None else load_dataset(dataset, data_dir)
    weights_dir = Path(weights_dir)
    names = models_of(weights_dir, info, models)
    classifier = load(weights_dir / f"{info.classifier}.safetensors", device)
    settings = _settings(info, n, str(device))
    key = "utility_verified" if verified else "utility"
    out = Path(out)
    document = json.loads(out.read_text()) if out.exists() else {}
    section = _kept(document.get(key, {}), settings)
    section = {"protocol": " ".join(__doc__.split("\n\n")[1].split()), **settings,
               "seeds": sorted(set(section.get("seeds", [])) | set(seeds)),  # every seed the rows hold
               "learners": {**section.get("learners", {}), **{name: _described(name, info) for name in learners}},
               "real": {} if fresh_baseline else section.get("real", {}),
               "models": section.get("models", {}), "curve": section.get("curve", {})}

    def train(images, labels, learner, seed):
        return accuracy_when_trained_on(images, labels, data, preset=learner_preset(learner, info, seed),
                                        device=device, progress=progress)

    def record(row: dict, learner: str, seed: int, images, labels, what: str) -> None:
        accuracy, seconds = _timed(train, images, labels, learner, seed)
        row.setdefault(learner, {"accuracy": {}, "seconds": {}})
        row[learner]["accuracy"][str(seed)] = accuracy
        row[learner]["seconds"][str(seed)] = seconds
        print(f"{learner:>10} seed {seed}: {100 * accuracy:.2f} % on the real test set, trained on {what} "
              f"({seconds} s)", flush=True)
        _write(out, key, section)

    real_images, real_labels = real_training_set(data, n)
    for learner in learners:
        for seed in seeds:
            if str(seed) not in section["real"].get(learner, {}).get("accuracy", {}):
                record(section["real"], learner, seed, real_images, real_labels, f"{n} real {info.title} images")
    for name in names:
        ckpt = load(weights_dir / f"{name}.safetensors", device)
        if ckpt.kind not in ("vae", "generator"):
            continue
        if verified and not sequence.is_conditional(ckpt.module):
            continue  # labelled by the classifier already: its verified sequence is the plain one
        row = section["models"].get(name, {})
        if row.get("weights_sha256") != ckpt.sha256:  # new weights: earlier figures are of another model
            row = section["models"][name] = {"weights_sha256": ckpt.sha256, "learners": {}}
        row["label_source"] = sequence.label_source(ckpt.module)
        for seed in seeds:
            todo = [learner for learner in learners
                    if str(seed) not in row["learners"].get(learner, {}).get("accuracy", {})]
            if not todo:
                continue
            images, labels = sequence.make(ckpt.module, n, seed, device=device, classifier=classifier.module,
                                           classifier_device=device, verified=verified)
            for learner in todo:
                record(row["learners"], learner, seed, images.reshape(n, 28, 28), labels, f"{n} of {name}")
    if curve_models:
        _curve(section, data, info, names=list(curve_models), sizes=curve_sizes, seed=seeds[0], weights_dir=weights_dir,
               classifier=classifier.module, device=device, train=train, write=lambda: _write(out, key, section))
    section["gaps"] = gaps(section)
    _write(out, key, section)
    if update_cards:
        _update_cards(weights_dir, section, verified)
    print_table(section)
    print(f"wrote {out}")
    return section


def _curve(section: dict, data: Splits, info: DatasetInfo, *, names: list[str], sizes: tuple[int, ...], seed: int,
           weights_dir: Path, classifier, device, train, write) -> None:
    """Accuracy against the number of training items: curve[source][learner][n], source a model or "real"."""
    curve = section["curve"]
    if curve.get("seed") != seed:
        curve.clear()
    curve.update(seed=seed, learners=list(CURVE_LEARNERS), sizes=list(sizes))
    rows = curve.setdefault("rows", {})
    available = len(data.train_images) + len(data.val_images)
    for learner in CURVE_LEARNERS:
        for size in sizes:
            if size <= available and str(size) not in rows.get("real", {}).get(learner, {}):
                images, labels = real_training_set(data, size)
                accuracy = train(images, labels, learner, seed)
                rows.setdefault("real", {}).setdefault(learner, {})[str(size)] = accuracy
                print(f"curve: {learner} on {size} real images: {100 * accuracy:.2f} %", flush=True)
                write()
    for name in names:
        ckpt = load(weights_dir / f"{name}.safetensors", device)
        if rows.get(name, {}).get("weights_sha256") != ckpt.sha256:
            rows[name] = {"weights_sha256": ckpt.sha256}
        for size in sizes:
            if all(str(size) in rows[name].get(learner, {}) for learner in CURVE_LEARNERS):
                continue
            images, labels = sequence.make(ckpt.module, size, seed, device=device, classifier=classifier,
                                           classifier_device=device)
            for learner in CURVE_LEARNERS:
                accuracy = train(images.reshape(size, 28, 28), labels, learner, seed)
                rows[name].setdefault(learner, {})[str(size)] = accuracy
                print(f"curve: {learner} on {size} items of {name}: {100 * accuracy:.2f} %", flush=True)
                write()
            del images, labels


def _write(out: Path, key: str, section: dict) -> None:
    """The section into the metrics document, other keys as they are on disk now (other runs may write)."""
    document = json.loads(out.read_text()) if out.exists() else {}
    document[key] = section
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")


def _update_cards(weights_dir: Path, section: dict, verified: bool) -> None:
    """Each measured model's card gets its per-learner figures (utility, or utility_verified) and, for the
    bundled classifier's recipe, the single figures older readers know (utility_cas, utility_real_baseline)."""
    for model, per_learner in section["gaps"].items():
        card_path = weights_dir / f"{model}.json"
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text())
        if card.get("weights_sha256") != section["models"][model].get("weights_sha256"):
            continue  # figures of other weights than the ones there now
        figures = {"n": section["n"], "seeds": section["seeds"], "learners": per_learner,
                   "label_source": section["models"][model]["label_source"]}
        metrics = card.get("metrics", {})
        if verified:
            metrics["utility_verified"] = figures
            if JUDGE in per_learner:
                metrics["utility_cas_verified"] = per_learner[JUDGE]["mean"]
        else:
            metrics["utility"] = figures
            if JUDGE in per_learner:
                metrics.update(utility_cas=per_learner[JUDGE]["mean"], utility_real_baseline=per_learner[JUDGE]["real"],
                               utility_label_source=figures["label_source"], utility_n=section["n"])
        card["metrics"] = metrics
        card_path.write_text(json.dumps(card, indent=2) + "\n")


def print_table(section: dict) -> None:
    table = section["gaps"]
    learners = list(section.get("learners", {}))
    print(f"{'trained on':<24}" + "".join(f"{name:>24}" for name in learners))
    real = {name: summary(row["accuracy"]) for name, row in section.get("real", {}).items()}
    print(f"{'real':<24}" + "".join(f"{100 * real[l]['mean']:>15.2f} ± {100 * real[l]['spread']:.2f}    "
                                    if l in real else f"{'':>24}" for l in learners))
    for model, row in table.items():
        print(f"{model:<24}" + "".join(f"{100 * row[l]['mean']:>10.2f} ± {100 * row[l]['spread']:.2f} ({row[l]['gap']:+.2f})"
                                       if l in row else f"{'':>24}" for l in learners))
