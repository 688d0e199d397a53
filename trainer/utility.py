"""The utility score of a generator: does a classifier trained only on its digits work on real ones?

Classification Accuracy Score (Ravuri & Vinyals, "Classification Accuracy Score for Conditional
Generative Models", NeurIPS 2019): train a classifier on n synthetic labelled images, test it on the
10,000 real MNIST test images; next to it the same classifier, recipe and seed trained on n real
images (the 60,000 of MNIST's training file: the train and validation splits together).

The synthetic set is exactly what `GET /dataset?model=<name>&seed=<seed>&n=<n>` serves (models/dataset.py):
for a class-conditional generator, equal shares of each digit labelled with the class asked for;
for a model without classes, labels from the bundled classifier. The classifier trained here uses
the bundled classifier's recipe (the `classifier` preset: small CNN, 6 epochs, Adam 1e-3 cosine,
+-2 px shifts); the real validation split only reports progress, nothing is selected on it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from models import dataset
from models.checkpoint import load
from models.classifier import DigitClassifier
from models.devices import resolve_device
from models.sampling import classify_u8
from trainer.data import DEFAULT_DATA_DIR, MNIST, load_mnist
from trainer.presets import get_preset
from trainer.train_classifier import train_classifier

CAS_N = 60_000


def test_accuracy_when_trained_on(images_u8: torch.Tensor, labels: torch.Tensor, data: MNIST, *, seed: int,
                                  device: torch.device, progress: bool = False) -> float:
    """The `classifier` preset trained on (images uint8 (n, 28, 28), labels (n,)); its real test accuracy."""
    preset = get_preset("classifier", seed=seed)
    split = MNIST(train_images=images_u8.to(device), train_labels=labels.long().to(device),
                  val_images=data.val_images.to(device), val_labels=data.val_labels.to(device),
                  test_images=data.test_images.to(device), test_labels=data.test_labels.to(device),
                  checksums=data.checksums)
    torch.manual_seed(seed)  # the classifier's initial weights
    model = DigitClassifier(preset.classifier).to(device)
    return train_classifier(model, split, preset, device, progress=progress)["test_accuracy"]


def agreeing_items(module, classifier, n: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n items of the sequence whose label the classifier agrees with (a class-conditional
    generator's off-class samples dropped): a measure of how much label noise costs."""
    images, labels, made = [], [], 0
    while sum(len(part) for part in labels) < n:
        batch_images, batch_labels = dataset.make(module, dataset.BLOCK * 8, seed, offset=made, device=device)
        made += dataset.BLOCK * 8
        verdict, _ = classify_u8(classifier, batch_images, device=device)
        keep = verdict.to(batch_labels.device) == batch_labels.long()
        images.append(batch_images[keep])
        labels.append(batch_labels[keep])
    return torch.cat(images)[:n], torch.cat(labels)[:n]


def real_training_set(data: MNIST, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.cat([data.train_images, data.val_images])[:n]
    return images, torch.cat([data.train_labels, data.val_labels])[:n]


def run_utility(*, weights_dir: Path, out: Path, models: list[str] | None = None, n: int = CAS_N, seed: int = 0,
                device: str = "auto", data_dir: Path = DEFAULT_DATA_DIR, update_cards: bool = True,
                data: MNIST | None = None, progress: bool = True, keep: str = "all") -> dict:
    """CAS of each generative model in `weights_dir` (default: all) and the real-data baseline, written
    under "utility" in `out` (the metrics JSON, other keys kept) and into the model cards.
    keep="agreeing": an experiment, not what /dataset serves: class-conditional models train on the
    first n items the bundled classifier agrees with; written under "utility_agreeing", cards untouched."""
    if keep not in ("all", "agreeing"):
        raise ValueError(f"keep must be all or agreeing, not {keep!r}")
    update_cards = update_cards and keep == "all"
    device = resolve_device(device)
    data = data if data is not None else load_mnist(data_dir)
    weights_dir = Path(weights_dir)
    classifier = load(weights_dir / "classifier.safetensors", device)
    names = models or sorted(p.stem for p in weights_dir.glob("*.safetensors") if p.stem != "classifier")
    started = time.perf_counter()
    real = test_accuracy_when_trained_on(*real_training_set(data, n), data, seed=seed, device=device,
                                         progress=progress)
    results = {"protocol": __doc__.split("\n\n")[1].replace("\n", " "), "n": n, "seed": seed, "device": str(device),
               "real": {"test_accuracy": real, "seconds": round(time.perf_counter() - started, 1)}, "models": {}}
    print(f"trained on {n} real digits: {100 * real:.2f} % on the real test set", flush=True)
    for name in names:
        ckpt = load(weights_dir / f"{name}.safetensors", device)
        if ckpt.kind not in ("vae", "generator"):
            continue
        started = time.perf_counter()
        if keep == "agreeing" and dataset.is_conditional(ckpt.module):
            images, labels = agreeing_items(ckpt.module, classifier.module, n, seed, device)
        elif keep == "agreeing":
            continue  # labels already are the classifier's verdicts: nothing to drop
        else:
            images, labels = dataset.make(ckpt.module, n, seed, device=device, classifier=classifier.module,
                                          classifier_device=device)
        accuracy = test_accuracy_when_trained_on(images.reshape(n, 28, 28), labels, data, seed=seed, device=device,
                                                 progress=progress)
        results["models"][name] = {"test_accuracy": accuracy, "label_source": dataset.label_source(ckpt.module),
                                   "seconds": round(time.perf_counter() - started, 1)}
        print(f"trained on {n} digits of {name}: {100 * accuracy:.2f} % on the real test set", flush=True)
        if update_cards and ckpt.card is not None:
            card_path = ckpt.path.with_suffix(".json")
            card = json.loads(card_path.read_text())
            card["metrics"] = {**card.get("metrics", {}), "utility_cas": accuracy, "utility_real_baseline": real,
                               "utility_n": n, "utility_label_source": dataset.label_source(ckpt.module)}
            card_path.write_text(json.dumps(card, indent=2) + "\n")
    out = Path(out)
    key = "utility" if keep == "all" else "utility_agreeing"
    document = json.loads(out.read_text()) if out.exists() else {}
    if models and document.get(key, {}).get("n") == n:  # a partial run keeps the other models' rows
        results["models"] = {**document[key].get("models", {}), **results["models"]}
    document[key] = results
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")
    return results
