"""A class-conditional VAE for datasets, built from a trained VAE without further training: its encoder
and decoder unchanged, its prior replaced by the exemplar prior of the labelled training digits
(models/vae.py), i.e. every training image's posterior q(z | x_i) kept with its class.

The exemplars are all the images of the dataset's training file (the train and validation splits,
60,000 for MNIST): the set a real-data baseline trains on. Nothing is selected on the test set.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from models.vae import VAE
from trainer.common import load_base, to_unit
from trainer.data import MNIST
from trainer.presets import Preset

ENCODE_BATCH = 2000


class ExemplarError(RuntimeError):
    """The base VAE named by a preset is missing or unusable."""


def load_base_vae(preset: Preset, weights_dir: Path, device: torch.device) -> tuple[VAE, str]:
    """The trained VAE the preset starts from, and its weights' SHA-256."""
    loaded = load_base(weights_dir, preset.teacher, "vae", "base VAE", ExemplarError, device)
    return loaded.module, loaded.sha256


@torch.no_grad()
def build_exemplar_vae(base: VAE, data: MNIST) -> VAE:
    """`base`'s networks with the exemplar prior of data's training file (train + validation splits)."""
    images = torch.cat([data.train_images, data.val_images])
    labels = torch.cat([data.train_labels, data.val_labels])
    config = dataclasses.replace(base.config, prior="exemplar", pseudo_inputs=0, exemplars=len(images))
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
