"""Training recipes. `vae-seed` / `gan-seed` are the course report's recipe exactly; `vae` / `gan`
are the better recipes that are bundled as the service's defaults. Every recipe states its dataset;
`fashion-<name>` is recipe <name> on Fashion-MNIST, unchanged but for the classifier's epochs."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from models.classifier import ClassifierConfig
from models.datasets import dataset_named
from models.gan import DiscriminatorConfig, GeneratorConfig
from models.vae import VAEConfig


@dataclass
class Preset:
    name: str
    family: str  # vae | gan | classifier
    epochs: int
    batch_size: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    lr_d: float | None = None  # GAN: the discriminator's learning rate when it differs from G's (TTUR)
    schedule: str = "constant"  # constant | cosine
    seed: int = 0
    description: str = ""
    dataset: str = "mnist"  # mnist | fashion (models/datasets.py)
    vae: VAEConfig | None = None
    generator: GeneratorConfig | None = None
    discriminator: DiscriminatorConfig | None = None
    classifier: ClassifierConfig | None = None
    # family-specific knobs
    binarize: bool = False  # VAE: dynamically binarised pixels (Bernoulli samples each step)
    gan_loss: str = "bce"  # bce | hinge
    real_label: float = 1.0  # < 1 is one-sided label smoothing
    data_range: str = "unit"  # unit = [0, 1] | symmetric = [-1, 1] (for tanh generators)
    ema_decay: float = 0.0  # > 0: serve an exponential moving average of the generator
    augment_shift: int = 0  # classifier: random translation in pixels
    snapshot_every: int = 0  # GAN: keep the served generator every N epochs (for the quality-by-epoch table)
    # distillation (trainer/train_distill.py): the bundled generator this one learns to copy, latent for
    # latent, and the weights of its losses
    teacher: str = ""
    distill_pixel: float = 1.0
    distill_feature: float = 0.0
    distill_adversarial: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset(
        name="vae-seed", family="vae", epochs=50, batch_size=64, lr=0.005,
        description="Course report recipe: MLP 784-300-32 / 16-300-784, Bernoulli likelihood, Adam 5e-3, batch 64.",
        vae=VAEConfig(latent_dim=16, hidden_dims=(300,)),
    ),
    Preset(
        name="gan-seed", family="gan", epochs=50, batch_size=64, lr=0.0002,
        description="Course report recipe: MLP G 16-300-784 (linear out), D 784-300-1 sigmoid, BCE, Adam 2e-4.",
        generator=GeneratorConfig(latent_dim=16, arch="mlp", hidden_dim=300, output="linear"),
        discriminator=DiscriminatorConfig(arch="mlp", hidden_dim=300, sigmoid=True),
    ),
    Preset(
        name="vae", family="vae", epochs=100, batch_size=128, lr=0.001, schedule="cosine", binarize=True,
        description="MLP 784-512-512-(16) both ways on dynamically binarised pixels, Adam 1e-3 with cosine decay.",
        vae=VAEConfig(latent_dim=16, hidden_dims=(512, 512)),
    ),
    Preset(
        name="gan", family="gan", epochs=35, batch_size=64, lr=0.0002, betas=(0.5, 0.999),
        gan_loss="hinge", data_range="symmetric", ema_decay=0.999, snapshot_every=5,
        description="Class-conditional DCGAN, z=16 with the digit read from z[0]'s quantile: G 128-64 channels "
                    "with BatchNorm, projection D 64-128 channels with spectral norm, hinge loss, Adam 2e-4 "
                    "beta1 0.5, EMA of generator weights (0.999).",
        # conditional: the unconditional DCGAN (same losses; FID 41.6 after 50 epochs) drew about a quarter of
        # its samples as blends between digits. Trained side by side with gan-bce (see reports/REPORT.md):
        # FID 10.4 vs 12.9 at epoch 30 (n = 5000), so this one is served
        generator=GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=128, output="tanh", num_classes=10),
        discriminator=DiscriminatorConfig(arch="dcgan", hidden_dim=64, activation="leaky_relu",
                                          spectral_norm=True, sigmoid=False, num_classes=10),
    ),
    Preset(
        name="gan-bce", family="gan", epochs=35, batch_size=64, lr=0.0002, betas=(0.5, 0.999),
        gan_loss="bce", data_range="symmetric", ema_decay=0.999, snapshot_every=5,
        description="As gan, with the non-saturating BCE loss and no spectral norm in D (faster at first: "
                    "FID 95 vs 113 after 3 epochs; behind from epoch 10 on).",
        generator=GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=128, output="tanh", num_classes=10),
        discriminator=DiscriminatorConfig(arch="dcgan", hidden_dim=64, activation="leaky_relu",
                                          spectral_norm=False, sigmoid=False, num_classes=10),
    ),
    Preset(
        name="gan-small", family="gan", epochs=10, batch_size=64, lr=0.0005, betas=(0.5, 0.999), ema_decay=0.999,
        gan_loss="hinge", data_range="symmetric", teacher="gan", distill_pixel=1.0, distill_feature=1.0,
        description="The gan DCGAN distilled into 64-32 channels (a quarter of its multiply-adds): the same "
                    "latent gives the same image; L1 on pixels plus the classifier's features, Adam 5e-4, EMA.",
        generator=GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=64, output="tanh", num_classes=10),
        discriminator=DiscriminatorConfig(arch="dcgan", hidden_dim=64, activation="leaky_relu",
                                          spectral_norm=True, sigmoid=False, num_classes=10),
    ),
    Preset(
        name="classifier", family="classifier", epochs=6, batch_size=128, lr=0.001, schedule="cosine",
        augment_shift=2,
        description="Small CNN (2 conv + BN, 128-d features) with +-2 px shifts; feature space for FID/KID/IS.",
        classifier=ClassifierConfig(),
    ),
]}


def _on_fashion(preset: Preset, **changes: Any) -> Preset:
    return dataclasses.replace(copy.deepcopy(preset), name=f"fashion-{preset.name}", dataset="fashion",
                               description=f"On Fashion-MNIST: {preset.description}", **changes)


# the recipes on the harder data, to compare like with like; the judge alone gets more epochs (10 vs 6:
# on clothes its validation accuracy still rises after 6), since every fashion metric is measured with it
FASHION_OF = ("classifier", "vae-seed", "gan-seed", "vae", "gan")
PRESETS.update({f"fashion-{name}": _on_fashion(PRESETS[name], **({"epochs": 10} if name == "classifier" else {}))
                for name in FASHION_OF})


def get_preset(name: str, dataset: str | None = None, **overrides: Any) -> Preset:
    """A copy of preset `name` with `overrides` (None values ignored). dataset: the same recipe on that
    dataset, under that dataset's name for it (`gan` on fashion is `fashion-gan`, `fashion-vae` on
    mnist is `vae`), so a checkpoint never carries another dataset's model's name."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    base = PRESETS[name]
    if dataset is not None and dataset != base.dataset:
        recipe = name.removeprefix(dataset_named(base.dataset).prefix)
        target = dataset_named(dataset).model_name(recipe)
        base = PRESETS[target] if target in PRESETS else _on_fashion(PRESETS[recipe])
    changes = {k: v for k, v in overrides.items() if v is not None}
    # a deep copy: the nested model configs are mutable and must not be shared with PRESETS
    return dataclasses.replace(copy.deepcopy(base), **changes)
