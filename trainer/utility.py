"""The utility score of a generator: does a classifier trained only on its digits work on real ones?

Classification Accuracy Score (Ravuri & Vinyals, "Classification Accuracy Score for Conditional
Generative Models", NeurIPS 2019): train a classifier on n synthetic labelled images, test it on the
10,000 real test images of the generator's dataset (MNIST or Fashion-MNIST); next to it the same
classifier, recipe and seed trained on n real images (the 60,000 of the dataset's training file:
the train and validation splits together).

The synthetic set is exactly what `GET /dataset?model=<name>&seed=<seed>&n=<n>` serves (models/dataset.py):
for a class-conditional generator, equal shares of each digit labelled with the class asked for;
for a model without classes, labels from the bundled classifier. With verified=True it is what
`&verified=true` serves: a class-conditional model's off-class items redrawn until the classifier
agrees. The classifier trained here uses the recipe of the dataset's bundled classifier (the
`classifier` preset: small CNN, 6 epochs, Adam 1e-3 cosine, +-2 px shifts; `fashion-classifier`: the
same for 10 epochs); the real validation split only reports progress, nothing is selected on it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from models import dataset as sequence  # the labelled sequence /dataset serves
from models.checkpoint import load
from models.classifier import DigitClassifier
from models.datasets import dataset_named
from models.devices import resolve_device
from trainer.data import MNIST, load_dataset
from trainer.presets import get_preset
from trainer.train_classifier import train_classifier

CAS_N = 60_000


def test_accuracy_when_trained_on(images_u8: torch.Tensor, labels: torch.Tensor, data: MNIST, *, seed: int,
                                  device: torch.device, progress: bool = False, recipe: str = "classifier") -> float:
    """The `recipe` classifier preset trained on (images uint8 (n, 28, 28), labels (n,)); its accuracy on
    data's real test set."""
    preset = get_preset(recipe, seed=seed)
    split = MNIST(train_images=images_u8.to(device), train_labels=labels.long().to(device),
                  val_images=data.val_images.to(device), val_labels=data.val_labels.to(device),
                  test_images=data.test_images.to(device), test_labels=data.test_labels.to(device),
                  checksums=data.checksums, title=data.title)
    torch.manual_seed(seed)  # the classifier's initial weights
    model = DigitClassifier(preset.classifier).to(device)
    return train_classifier(model, split, preset, device, progress=progress)["test_accuracy"]


def real_training_set(data: MNIST, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.cat([data.train_images, data.val_images])[:n]
    return images, torch.cat([data.train_labels, data.val_labels])[:n]


def _measured_so(section: dict, title: str, n: int, seed: int, device: str) -> bool:
    """Whether a utility section of the metrics document was measured with these settings."""
    return (section.get("dataset", "MNIST"), section.get("n"), section.get("seed"), section.get("device")) == \
        (title, n, seed, device)


def _kept_baseline(document: dict, title: str, n: int, seed: int, device: str) -> dict | None:
    """The real-data baseline of an earlier run in the metrics document, if it was measured this way."""
    for key in ("utility", "utility_verified"):
        earlier = document.get(key, {})
        if _measured_so(earlier, title, n, seed, device) and "real" in earlier:
            return earlier["real"]
    return None


def run_utility(*, weights_dir: Path, out: Path, models: list[str] | None = None, n: int = CAS_N, seed: int = 0,
                device: str = "auto", data_dir: Path | None = None, update_cards: bool = True,
                data: MNIST | None = None, progress: bool = True, verified: bool = False,
                dataset: str = "mnist", fresh_baseline: bool = False) -> dict:
    """CAS of each generative model in `weights_dir` (default: all) and the real-data baseline, written
    under "utility" in `out` (the metrics JSON, other keys kept) and into the model cards (utility_cas).
    verified=True: the class-conditional models' verified sequences (models without classes are
    skipped: theirs is the plain one), under "utility_verified" and as utility_cas_verified.
    dataset: whose models (default all of them), real images and classifier (fashion: Fashion-MNIST's).
    A run for named `models` keeps the real-data baseline already in `out` when it was measured the
    same way (dataset, n, seed, device): it does not depend on the models, and it is the longest
    part; fresh_baseline=True measures it again."""
    from trainer.evaluate import models_of

    device = resolve_device(device)
    info = dataset_named(dataset)
    data = data if data is not None else load_dataset(dataset, data_dir)
    weights_dir = Path(weights_dir)
    names = models_of(weights_dir, info, models)
    classifier = load(weights_dir / f"{info.classifier}.safetensors", device)
    out = Path(out)
    document = json.loads(out.read_text()) if out.exists() else {}
    baseline = _kept_baseline(document, info.title, n, seed, str(device)) if models and not fresh_baseline else None
    if baseline is None:
        started = time.perf_counter()
        real = test_accuracy_when_trained_on(*real_training_set(data, n), data, seed=seed, device=device,
                                             progress=progress, recipe=info.classifier)
        baseline = {"test_accuracy": real, "seconds": round(time.perf_counter() - started, 1)}
    real = baseline["test_accuracy"]
    results = {"protocol": __doc__.split("\n\n")[1].replace("\n", " "), "dataset": info.title, "n": n,
               "seed": seed, "device": str(device), "real": baseline, "models": {}}
    print(f"trained on {n} real {info.title} images: {100 * real:.2f} % on the real test set", flush=True)
    for name in names:
        ckpt = load(weights_dir / f"{name}.safetensors", device)
        if ckpt.kind not in ("vae", "generator"):
            continue
        if verified and not sequence.is_conditional(ckpt.module):
            continue  # labelled by the classifier already: its verified sequence is the plain one
        started = time.perf_counter()
        images, labels = sequence.make(ckpt.module, n, seed, device=device, classifier=classifier.module,
                                      classifier_device=device, verified=verified)
        accuracy = test_accuracy_when_trained_on(images.reshape(n, 28, 28), labels, data, seed=seed, device=device,
                                                 progress=progress, recipe=info.classifier)
        results["models"][name] = {"test_accuracy": accuracy, "label_source": sequence.label_source(ckpt.module),
                                   "seconds": round(time.perf_counter() - started, 1)}
        print(f"trained on {n} images of {name}{' (verified)' if verified else ''}: {100 * accuracy:.2f} % on the "
              f"real test set", flush=True)
        if update_cards and ckpt.card is not None:
            card_path = ckpt.path.with_suffix(".json")
            card = json.loads(card_path.read_text())
            scores = ({"utility_cas_verified": accuracy} if verified else
                      {"utility_cas": accuracy, "utility_label_source": sequence.label_source(ckpt.module)})
            card["metrics"] = {**card.get("metrics", {}), **scores, "utility_real_baseline": real, "utility_n": n}
            card_path.write_text(json.dumps(card, indent=2) + "\n")
    key = "utility_verified" if verified else "utility"
    document = json.loads(out.read_text()) if out.exists() else {}  # again: other runs may have written since
    earlier = document.get(key, {})
    if models and _measured_so(earlier, info.title, n, seed, str(device)):  # a partial run keeps the other rows
        results["models"] = {**earlier.get("models", {}), **results["models"]}
    document[key] = results
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")
    return results
