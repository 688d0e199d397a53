"""The image datasets models are trained on, by the names the trainer, the model cards and the
service share: what each is called, its ten class names, and which bundled classifier judges it.

A model card names its dataset under data.dataset by `title` ("MNIST", "Fashion-MNIST"); a card
without one is MNIST (every card written before Fashion-MNIST existed). Both datasets are 28x28
greyscale with ten classes, so every model family works on either.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    key: str  # the trainer's --dataset value
    title: str  # the name in model cards and /models
    classes: tuple[str, ...]  # class index -> name
    classifier: str  # the bundled classifier that judges this dataset's samples (labels, digit=/label=, metrics)
    prefix: str  # of its bundled models' names: prefix + "gan" is its class-conditional DCGAN
    # the classifier probability a digit=/label= sample needs by default: one that real test images of
    # every class reach often (at 0.999 most MNIST digits do, but no real Fashion-MNIST Coat or Shirt)
    min_confidence: float = 0.999

    def model_name(self, recipe: str) -> str:
        """The bundled name of a recipe's model trained on this dataset: gan -> fashion-gan."""
        return self.prefix + recipe


MNIST = DatasetInfo(key="mnist", title="MNIST", classes=tuple(str(d) for d in range(10)), classifier="classifier", prefix="")
FASHION = DatasetInfo(
    key="fashion", title="Fashion-MNIST",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    classifier="fashion-classifier", prefix="fashion-", min_confidence=0.9,
)
DATASETS: dict[str, DatasetInfo] = {d.key: d for d in (MNIST, FASHION)}


def dataset_named(key: str) -> DatasetInfo:
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {key!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[key]


def dataset_of_card(card: dict | None) -> DatasetInfo:
    """The dataset a model card says its model was trained on (MNIST when the card does not say).
    Raises ValueError for a dataset this version does not know: judging such a model's samples with
    another dataset's classifier would give wrong labels."""
    title = ((card or {}).get("data") or {}).get("dataset", MNIST.title)
    for info in DATASETS.values():
        if info.title == title or info.key == title:
            return info
    raise ValueError(f"the model card names the dataset {title!r}; known: "
                     f"{', '.join(d.title for d in DATASETS.values())}")
