"""A class-conditional VAE for datasets, built from a trained VAE without further training: its encoder
and decoder unchanged, its prior replaced by the exemplar prior of the labelled training digits
(models/vae.py), i.e. every training image's posterior q(z | x_i) kept with its class.

The exemplars are all the images of the dataset's training file (the train and validation splits,
60,000 for MNIST): the set a real-data baseline trains on. The prior's sampling temperature
(exemplar_scale) is chosen before that, on held-out digits: exemplars from the train split alone, a
/dataset sequence as large as that split for each candidate, the selection learners trained on it and on
the real split, all scored on the validation split; the candidate whose worst gap to real is smallest wins.
Nothing is selected on the test set.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from models import synthetic as sequence
from models.datasets import dataset_named
from models.vae import VAE
from trainer.common import load_base, to_unit
from trainer.data import Splits
from trainer.presets import Preset

ENCODE_BATCH = 2000
SELECTION_LEARNERS = ("cnn-brief", "mlp")  # trainer/utility.py's cheap learners, of two kinds
SELECTION_SEED = 1


class ExemplarError(RuntimeError):
    """The base VAE named by a preset is missing or unusable."""


def load_base_vae(preset: Preset, weights_dir: Path, device: torch.device) -> tuple[VAE, str]:
    """The trained VAE the preset starts from, and its weights' SHA-256."""
    loaded = load_base(weights_dir, preset.teacher, "vae", "base VAE", ExemplarError, device)
    return loaded.module, loaded.sha256


@torch.no_grad()
def build_exemplar_vae(base: VAE, images: torch.Tensor, labels: torch.Tensor, scale: float = 1.0) -> VAE:
    """`base`'s networks with the exemplar prior of (images uint8 (N, 28, 28), labels (N,)), widened by
    `scale`."""
    config = dataclasses.replace(base.config, prior="exemplar", pseudo_inputs=0, exemplars=len(images),
                                 exemplar_scale=float(scale))
    device = next(base.parameters()).device
    model = VAE(config).to(device)
    networks = {k: v for k, v in base.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    missing, unexpected = model.load_state_dict(networks, strict=False)
    if unexpected or any(k.startswith(("encoder.", "decoder.")) for k in missing):
        raise ExemplarError(f"the base VAE's networks do not fit: missing {missing}, unexpected {unexpected}")
    mus, logvars = [], []
    for part in images.split(ENCODE_BATCH):
        mu, logvar = base.encode(to_unit(part.to(device)))
        mus.append(mu)
        logvars.append(logvar)
    model.set_exemplars(torch.cat(mus), torch.cat(logvars), labels.to(device))
    return model.eval()


def at_scale(model: VAE, scale: float) -> VAE:
    """The same exemplar VAE (networks and exemplars) drawing at another temperature."""
    rescaled = VAE(dataclasses.replace(model.config, exemplar_scale=float(scale))).to(next(model.parameters()).device)
    rescaled.load_state_dict(model.state_dict())
    return rescaled.eval()


def select_scale(base: VAE, data: Splits, preset: Preset, device: torch.device,
                 progress: bool = False) -> tuple[float, dict]:
    """The scale among preset.exemplar_scales whose sequence comes closest to real data for the learner it
    teaches least well, on the validation split, and the table behind the choice: {"real": {learner: accuracy},
    "scales": {scale: {learner: accuracy}}}, "real" being the same learners trained on the train split."""
    from trainer.utility import accuracy_when_trained_on, learner_preset  # utility reads this package's models

    info = dataset_named(preset.dataset)
    # the validation split stands in for the test set: the learners are scored on it
    held_out = dataclasses.replace(data, test_images=data.val_images, test_labels=data.val_labels)

    def scores(images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return {name: accuracy_when_trained_on(images, labels, held_out, device=device, progress=progress,
                                               preset=learner_preset(name, info, SELECTION_SEED))
                for name in SELECTION_LEARNERS}

    table: dict = {"learners": list(SELECTION_LEARNERS), "seed": SELECTION_SEED,
                   "real": scores(data.train_images, data.train_labels), "scales": {}}
    n = len(data.train_images)
    held_out_prior = build_exemplar_vae(base, data.train_images, data.train_labels)  # encoded once for every scale
    for scale in preset.exemplar_scales:
        images, labels = sequence.make(at_scale(held_out_prior, scale), n, SELECTION_SEED, device=device)
        table["scales"][str(scale)] = scores(images.reshape(n, 28, 28), labels)
        if progress:
            print(f"exemplar_scale {scale}: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in
                                                          table["scales"][str(scale)].items()), flush=True)
    best = max(preset.exemplar_scales, key=lambda s: worst_gap(table, s))
    return float(best), table


def worst_gap(table: dict, scale: float) -> float:
    """The scale's accuracy minus the real data's for the learner it teaches least well (the target is every
    learner's gap to real)."""
    return min(table["scales"][str(scale)][name] - table["real"][name] for name in table["real"])
