"""The loaded models: every checkpoint in the weights folder, on one device, warmed up."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from models.checkpoint import CheckpointError, LoadedCheckpoint, load
from models.datasets import MNIST, DatasetInfo, dataset_of_card
from models.devices import resolve_device
from models.sampling import prior_draws
from models.shapes import IMAGE_SHAPE

log = logging.getLogger("digitgen.registry")

GENERATIVE_KINDS = ("vae", "generator")


class RegistryError(RuntimeError):
    """Startup cannot go on; the message names the cause (a file, a device)."""


@dataclass
class ServedModel:
    name: str
    kind: str  # vae | generator | classifier
    module: nn.Module
    device: torch.device
    sha256: str
    card: dict
    parameters: int
    latent_dim: int | None = None
    path: Path | None = None
    dataset: DatasetInfo = MNIST  # what it was trained on (its card's data.dataset)
    # generate() seconds per latent in a 16-row batch, timed at warm-up on the CPU
    seconds_per_row: float | None = None

    @property
    def is_generative(self) -> bool:
        return self.kind in GENERATIVE_KINDS


@dataclass
class Registry:
    device: torch.device
    models: dict[str, ServedModel] = field(default_factory=dict)

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name)

    def judge(self, model: ServedModel) -> ServedModel | None:
        """The classifier of the model's dataset (by its bundled name, else any loaded one trained on it), or None."""
        named = self.models.get(model.dataset.classifier)
        if named is not None and named.kind == "classifier" and named.dataset == model.dataset:
            return named
        return next((m for m in self.models.values() if m.kind == "classifier" and m.dataset == model.dataset), None)


def _served(ckpt: LoadedCheckpoint, device: torch.device) -> ServedModel:
    module = ckpt.module
    try:
        dataset = dataset_of_card(ckpt.card)
    except ValueError as exc:
        raise RegistryError(f"cannot load {ckpt.path}: {exc}") from None
    latent_dim = getattr(module, "latent_dim", None)
    return ServedModel(
        name=ckpt.name, kind=ckpt.kind, module=module, device=device, sha256=ckpt.sha256,
        card=ckpt.card or {}, parameters=sum(p.numel() for p in module.parameters()),
        latent_dim=latent_dim, path=ckpt.path, dataset=dataset,
    )


TIMED_ROWS = 16  # a typical batch under load: what seconds_per_row is measured on


@torch.inference_mode()
def warm_up(model: ServedModel) -> None:
    """One forward pass per model, so no request pays for lazy initialisation; on the CPU, a generative model's
    cost per row (best of three 16-row passes) for the inline budget."""
    if model.kind == "classifier":
        model.module(torch.zeros(8, *IMAGE_SHAPE, device=model.device))
        return
    prior_draws(model.module, torch.zeros(8, model.latent_dim))  # a learned prior's mixture, computed once
    z = torch.zeros(8, model.latent_dim, device=model.device)
    images = model.module.generate(z)
    if model.kind == "vae":
        model.module.encode(images)
    if model.device.type != "cpu":
        return
    z = torch.randn(TIMED_ROWS, model.latent_dim)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        model.module.generate(z)
        best = min(best, time.perf_counter() - start)
    model.seconds_per_row = best / TIMED_ROWS


def serving_device(spec: str) -> torch.device:
    """The device DIGITGEN_DEVICE names, or RegistryError saying why it cannot be used."""
    try:
        return resolve_device(spec)
    except Exception as exc:  # DeviceError, or CUDA failing to initialise: one line either way
        raise RegistryError(f"DIGITGEN_DEVICE={spec!r} cannot be used: {exc}") from None


def weights_files(weights_dir: Path) -> list[Path]:
    """The *.safetensors files of the weights folder, or RegistryError saying why there are none."""
    if not weights_dir.is_dir():
        raise RegistryError(f"DIGITGEN_WEIGHTS_DIR={str(weights_dir)!r} is not a directory")
    paths = sorted(weights_dir.glob("*.safetensors"))
    if not paths:
        raise RegistryError(f"DIGITGEN_WEIGHTS_DIR={str(weights_dir)!r} holds no *.safetensors weights")
    return paths


def load_registry(weights_dir: Path, device_spec: str) -> Registry:
    """Load every *.safetensors in `weights_dir` (each with its model card) onto the device.
    Any failure raises RegistryError naming the file: the service never runs half a registry."""
    registry = Registry(device=serving_device(device_spec))
    for path in weights_files(Path(weights_dir)):
        try:
            ckpt = load(path, registry.device, require_card=True)
        except CheckpointError as exc:
            raise RegistryError(f"cannot load {path}: {exc}") from None
        model = _served(ckpt, registry.device)
        warm_up(model)
        registry.models[model.name] = model
        log.info("loaded %s (%s, %d parameters, sha256 %s…) on %s%s", model.name, model.kind,
                 model.parameters, model.sha256[:12], registry.device,
                 f", {1e6 * model.seconds_per_row:.0f} us per image" if model.seconds_per_row else "")
    if not any(m.is_generative for m in registry.models.values()):
        raise RegistryError(f"DIGITGEN_WEIGHTS_DIR={str(weights_dir)!r} holds no generative model (vae or generator)")
    return registry
