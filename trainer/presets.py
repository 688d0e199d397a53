"""Training recipes. `vae-seed` / `gan-seed` are the course report's recipe exactly; `vae` / `gan`
are the better recipes that are bundled as the service's defaults (`vae-normal`, the vae before the
VampPrior one, stays bundled for its latent space). Every recipe states its dataset;
`fashion-<name>` is recipe <name> on Fashion-MNIST, unchanged but for the epochs of two (FASHION_EPOCHS);
`gan` is `gan-wide` distilled into a cheaper generator, and `fashion-gan` is `gan-wide` on Fashion-MNIST."""
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
    # VAE, cosine only: (epoch E, factor f) restarts the decay once (SGDR, Loshchilov & Hutter 2017): the rate
    # falls from lr to 0 over the first E epochs, jumps to lr * f and falls to 0 again by the last epoch
    restart: tuple[int, float] | None = None
    seed: int = 0
    description: str = ""
    dataset: str = "mnist"  # mnist | fashion (models/datasets.py)
    vae: VAEConfig | None = None
    generator: GeneratorConfig | None = None
    discriminator: DiscriminatorConfig | None = None
    classifier: ClassifierConfig | None = None
    # family-specific knobs
    binarize: bool = False  # VAE: dynamically binarised pixels (Bernoulli samples each step)
    kl_warmup_epochs: int = 0  # VAE: the KL term's weight rises linearly from 0 to 1 over these epochs
    iw_samples: int = 1  # VAE: > 1 trains on the importance-weighted bound with this many samples (IWAE)
    gan_loss: str = "bce"  # bce | hinge
    real_label: float = 1.0  # < 1 is one-sided label smoothing
    data_range: str = "unit"  # unit = [0, 1] | symmetric = [-1, 1] (for tanh generators)
    ema_decay: float = 0.0  # > 0: serve an exponential moving average of the generator
    augment_shift: int = 0  # classifier: random translation in pixels
    snapshot_every: int = 0  # GAN: keep the served generator every N epochs (for the quality-by-epoch table)
    # distillation (trainer/train_distill.py): the bundled generator this one learns to copy, latent for
    # latent, and the weights of its losses; a VAE preset with a teacher is that VAE with an exemplar
    # prior (trainer/build_exemplar.py)
    teacher: str = ""
    # a VAE with a teacher: the exemplar prior's sampling temperatures to choose from on held-out digits
    # (trainer/build_exemplar.py); none keeps the posteriors as they are
    exemplar_scales: tuple[float, ...] = ()
    distill_pixel: float = 1.0
    distill_feature: float = 0.0
    distill_adversarial: float = 0.0

    def __post_init__(self) -> None:
        self.exemplar_scales = tuple(float(s) for s in self.exemplar_scales)
        if self.restart is not None:
            self.restart = (int(self.restart[0]), float(self.restart[1]))  # a list, from JSON, is the same restart
            if self.family != "vae" or self.schedule != "cosine":
                raise ValueError(f"{self.name}: a warm restart needs a cosine-scheduled VAE run")
            if not 0 < self.restart[0] < self.epochs:
                raise ValueError(f"{self.name}: the restart epoch {self.restart[0]} must fall inside the "
                                 f"run's {self.epochs} epochs")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def with_defaults(recipe: dict[str, Any]) -> dict[str, Any]:
    """A recipe as recorded by an earlier run (resume state, model card), with the Preset fields added
    since then filled in with their defaults: the run those fields did not exist for is that recipe."""
    def filled(cls: type, values: dict[str, Any]) -> dict[str, Any]:
        return {**{f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}, **values}

    configs = {"vae": VAEConfig, "generator": GeneratorConfig, "discriminator": DiscriminatorConfig,
               "classifier": ClassifierConfig}
    out = filled(Preset, recipe)
    for key, cls in configs.items():
        if isinstance(out.get(key), dict):
            out[key] = filled(cls, out[key])
    return out


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
        # bundled beside vae for clients that depend on its 16-d latent space
        name="vae-normal", family="vae", epochs=100, batch_size=128, lr=0.001, schedule="cosine", binarize=True,
        description="MLP 784-512-512-(16) both ways on dynamically binarised pixels, Adam 1e-3 with cosine decay.",
        vae=VAEConfig(latent_dim=16, hidden_dims=(512, 512)),
    ),
    Preset(
        name="vae-vamp", family="vae", epochs=200, batch_size=128, lr=0.001, schedule="cosine", binarize=True,
        kl_warmup_epochs=10,
        description="MLP 784-512-512-(32) both ways with a VampPrior of 500 pseudo-inputs (Tomczak & Welling 2018), "
                    "dynamically binarised pixels, KL warm-up over 10 epochs, Adam 1e-3 with cosine decay.",
        vae=VAEConfig(latent_dim=32, hidden_dims=(512, 512), prior="vamp", pseudo_inputs=500),
    ),
    Preset(
        name="vae", family="vae", epochs=250, batch_size=128, lr=0.001, schedule="cosine", binarize=True,
        restart=(150, 0.5), kl_warmup_epochs=10, iw_samples=5,
        description="MLP 784-512-512-(32) both ways with a VampPrior of 500 pseudo-inputs, trained on the "
                    "importance-weighted bound with 5 samples (Burda et al. 2016), dynamically binarised pixels, "
                    "KL warm-up over 10 epochs, Adam 1e-3 with cosine decay, then one warm restart at half "
                    "the rate decaying again (vae-vamp on the IWAE bound, trained longer).",
        vae=VAEConfig(latent_dim=32, hidden_dims=(512, 512), prior="vamp", pseudo_inputs=500),
    ),
    Preset(
        # no training: the served vae's networks with a new prior, built in seconds (trainer/build_exemplar.py)
        name="vae-exemplar", family="vae", epochs=0, batch_size=128, lr=0.0, teacher="vae",
        exemplar_scales=(1.0, 1.5, 2.0, 2.5, 3.0),
        binarize=True,  # as its networks were trained (vae's recipe); what evaluate reports them on
        description="The served vae's encoder and decoder with an exemplar prior: the aggregate posterior of "
                    "the 60,000 training digits, kept per class, so a latent drawn for a digit decodes to a "
                    "variation of one of that digit's training images; labels exact by construction.",
    ),
    Preset(
        name="gan-wide", family="gan", epochs=35, batch_size=64, lr=0.0002, betas=(0.5, 0.999),
        gan_loss="hinge", data_range="symmetric", ema_decay=0.999, snapshot_every=5,
        description="Class-conditional DCGAN, z=16 with the digit read from z[0]'s quantile: G 128-64 channels "
                    "with BatchNorm, projection D 64-128 channels with spectral norm, hinge loss, Adam 2e-4 "
                    "beta1 0.5, EMA of generator weights (0.999).",
        # conditional: the unconditional DCGAN (same losses; FID 41.6 after 50 epochs) drew about a quarter of
        # its samples as blends between digits. Trained side by side with gan-bce (see reports/REPORT.md):
        # FID 10.4 vs 12.9 at epoch 30 (n = 5000). Served as gan-wide, and taught to the served gan
        generator=GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=128, output="tanh", num_classes=10),
        discriminator=DiscriminatorConfig(arch="dcgan", hidden_dim=64, activation="leaky_relu",
                                          spectral_norm=True, sigmoid=False, num_classes=10),
    ),
    Preset(
        name="gan-bce", family="gan", epochs=35, batch_size=64, lr=0.0002, betas=(0.5, 0.999),
        gan_loss="bce", data_range="symmetric", ema_decay=0.999, snapshot_every=5,
        description="As gan-wide, with the non-saturating BCE loss and no spectral norm in D (faster at first: "
                    "FID 95 vs 113 after 3 epochs; behind from epoch 10 on).",
        generator=GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=128, output="tanh", num_classes=10),
        discriminator=DiscriminatorConfig(arch="dcgan", hidden_dim=64, activation="leaky_relu",
                                          spectral_norm=False, sigmoid=False, num_classes=10),
    ),
    Preset(
        name="gan", family="gan", epochs=20, batch_size=64, lr=0.0005, betas=(0.5, 0.999), ema_decay=0.999,
        gan_loss="hinge", data_range="symmetric", teacher="gan-wide", distill_pixel=1.0, distill_feature=1.0,
        description="gan-wide distilled into a DCGAN of 32-16 channels (a fourteenth of its multiply-adds): "
                    "the same latent gives the same digit; L1 on pixels plus the classifier's features on fresh "
                    "latents, Adam 5e-4, EMA 0.999, served with BatchNorm folded into the layers.",
        # the width from the cost-vs-FID sweep (reports/gan_distill.json): 32 channels kept FID within 0.5 of
        # the teacher's at a quarter of its time per image
        generator=GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=32, output="tanh", num_classes=10),
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


def _on_fashion(preset: Preset, name: str | None = None, **changes: Any) -> Preset:
    return dataclasses.replace(copy.deepcopy(preset), name=f"fashion-{name or preset.name}", dataset="fashion",
                               description=f"On Fashion-MNIST: {preset.description}", **changes)


# the recipes on the harder data, like for like, with more epochs where the harder data still gains from
# them (the judge's validation accuracy and the gan's FID still improve: reports/fashion-gan_epochs.json)
# fashion-gan is the adversarially trained DCGAN (gan-wide's recipe): Fashion-MNIST has no distilled gan.
FASHION_OF = ("classifier", "vae-seed", "gan-seed", "vae", "gan")
# the MNIST recipe a fashion preset runs, where not the same name: fashion-vae keeps the normal-prior recipe
FASHION_RECIPE = {"gan": "gan-wide", "vae": "vae-normal"}
FASHION_EPOCHS = {"classifier": 10, "gan": 70}
PRESETS.update({f"fashion-{name}": _on_fashion(PRESETS[FASHION_RECIPE.get(name, name)], name,
                                               **({"epochs": FASHION_EPOCHS[name]} if name in FASHION_EPOCHS else {}))
                for name in FASHION_OF})


# The bundled models of each dataset, in training order (a model built on another comes after it: gan is
# gan-wide distilled, vae-exemplar is vae with a new prior): `make train`, the report and the tests read it
BUNDLED: dict[str, tuple[str, ...]] = {
    "mnist": ("classifier", "vae-seed", "gan-seed", "vae-normal", "vae", "vae-exemplar", "gan-wide", "gan"),
    "fashion": tuple(f"fashion-{name}" for name in FASHION_OF),
}


def get_preset(name: str, dataset: str | None = None, **overrides: Any) -> Preset:
    """A copy of preset `name` with `overrides` (None values ignored). dataset: the same recipe on that
    dataset, under that dataset's name for it (`vae` on fashion is `fashion-vae`, `fashion-vae` on
    mnist is `vae`), so a checkpoint never carries another dataset's model's name. `fashion-gan` is
    `gan-wide`'s recipe: `gan-wide` (and `gan`, the dataset's served generator) on fashion is
    `fashion-gan`, and `fashion-gan` on mnist is `gan-wide`; likewise `fashion-vae` is `vae-normal`'s
    recipe, which `vae-normal` and `vae` on fashion give."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    base = PRESETS[name]
    if dataset is not None and dataset != base.dataset:
        recipe = name.removeprefix(dataset_named(base.dataset).prefix)
        if dataset == "mnist":  # fashion-gan is gan-wide's recipe
            target = FASHION_RECIPE.get(recipe, recipe)
        else:  # gan-wide and the dataset's gan are both fashion-gan there
            recipe = {v: k for k, v in FASHION_RECIPE.items()}.get(recipe, recipe)
            target = dataset_named(dataset).model_name(recipe)
        base = PRESETS[target] if target in PRESETS else _on_fashion(PRESETS[recipe])
    changes = {k: v for k, v in overrides.items() if v is not None}
    if base.restart is not None and "restart" not in changes and changes.get("epochs", base.epochs) <= base.restart[0]:
        # a run that ends before the restart is its first cycle alone, a plain cosine over its epochs
        # (whose finished state `--resume` at the preset's epochs continues into the restart)
        changes["restart"] = None
    # a deep copy: the nested model configs are mutable and must not be shared with PRESETS
    return dataclasses.replace(copy.deepcopy(base), **changes)
