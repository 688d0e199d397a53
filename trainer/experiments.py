"""`python -m trainer experiment {pilot,posthoc}`: the short GAN experiments quoted in the report's
discussion, so that every figure there comes from a command.

pilot    trains a variant of the `gan-wide` preset for a few epochs (overrides as JSON, e.g.
         '{"gan_loss": "bce", "discriminator": {"spectral_norm": false}}') and scores the raw generator
         (not the EMA copy, which after a few epochs still carries much of the initial weights).
posthoc  scores sampling-time changes to a trained generator: BatchNorm statistics re-estimated for its
         (EMA) weights, truncated latents, and the share of samples the classifier is unsure about.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from models.checkpoint import load
from models.devices import resolve_device
from models.gan import Discriminator, Generator
from trainer.common import to_unit
from trainer.data import DEFAULT_DATA_DIR, Splits, load_mnist
from trainer.evaluate import generate_with_latents
from trainer.metrics import image_metrics
from trainer.presets import get_preset
from trainer.train_gan import train_gan, with_class_prior


def _samples(generator: Generator, n: int, seed: int, truncation: float = 1.0) -> torch.Tensor:
    """n samples as `evaluate` makes them (same latents for the same seed), latents scaled by `truncation`."""
    device = next(generator.parameters()).device
    return generate_with_latents(generator, n, seed, device, truncation)[0]


def _score(name: str, images: torch.Tensor, test: torch.Tensor, classifier, unsure_below: float = 0.9) -> dict:
    metrics = image_metrics(images, test, classifier)
    with torch.no_grad():
        confidence = torch.cat([torch.softmax(classifier(part), 1).max(1).values for part in images.split(1000)])
    row = {"name": name, "n": len(images), "fid": metrics["fid"], "inception_score": metrics["inception_score"],
           "class_kl_to_uniform": metrics["class_kl_to_uniform"],
           f"share_confidence_below_{unsure_below}": float((confidence < unsure_below).float().mean())}
    print(f"{name:48s} FID {row['fid']:8.2f}  IS {row['inception_score']:.2f}  class KL "
          f"{row['class_kl_to_uniform']:.4f}  unsure {100 * row[f'share_confidence_below_{unsure_below}']:.1f} %",
          flush=True)
    return row


def recalibrated(generator: Generator, batches: int = 200, batch_size: int = 256, seed: int = 123) -> Generator:
    """A copy whose BatchNorm running statistics are re-estimated from its own (EMA) weights' activations."""
    generator = copy.deepcopy(generator)
    for module in generator.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over all the batches below
    generator.train()
    g = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    with torch.no_grad():
        for _ in range(batches):
            generator(torch.randn(batch_size, generator.latent_dim, generator=g).to(device))
    return generator.eval()


def posthoc(weights: Path, data: Splits, classifier, n: int, seed: int) -> list[dict]:
    generator = load(weights).module.eval()
    test = to_unit(data.test_images)
    rows = [_score("real train images (reference)", to_unit(data.train_images[:n]), test, classifier),
            _score("as trained", _samples(generator, n, seed), test, classifier)]
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in generator.modules()):  # not when folded
        rows.append(_score("BatchNorm statistics re-estimated", _samples(recalibrated(generator), n, seed), test,
                           classifier))
    for truncation in (0.9, 0.8):
        rows.append(_score(f"latents scaled by {truncation}", _samples(generator, n, seed, truncation), test,
                           classifier))
    return rows


def pilot(name: str, overrides: dict, epochs: int, data: Splits, classifier, n: int, seed: int,
          device: torch.device, max_steps: int | None = None) -> dict:
    overrides = dict(overrides)
    preset = get_preset("gan-wide", epochs=epochs)
    preset = dataclasses.replace(
        preset, snapshot_every=0,
        generator=dataclasses.replace(preset.generator, **overrides.pop("generator", {})),
        discriminator=dataclasses.replace(preset.discriminator, **overrides.pop("discriminator", {})),
        **overrides)
    preset = with_class_prior(preset, data)
    torch.manual_seed(preset.seed)
    generator, discriminator = Generator(preset.generator).to(device), Discriminator(preset.discriminator).to(device)
    with tempfile.TemporaryDirectory() as run_dir:
        train_gan(generator, discriminator, data.to(device), preset, device, Path(run_dir), max_steps=max_steps,
                  progress=False)
    return _score(f"{name} ({epochs} epochs, raw generator)", _samples(generator.eval(), n, seed),
                  to_unit(data.test_images).to(device), classifier)


DEFAULT_N = {"pilot": 2000, "posthoc": 5000}


def run_experiment(mode: str, *, weights_dir: Path, weights: Path | None = None, name: str = "pilot",
                   overrides: dict | None = None, epochs: int = 3, n: int | None = None, seed: int = 0,
                   device: str = "auto", data_dir: Path = DEFAULT_DATA_DIR, out: Path | None = None,
                   max_steps: int | None = None, data: Splits | None = None) -> list[dict]:
    """mode "pilot": `epochs` epochs of the gan-wide preset changed by `overrides`, its raw generator scored
    under `name`; "posthoc": sampling-time changes to the generator checkpoint `weights`. Both score n
    samples (default DEFAULT_N[mode]) with the classifier in `weights_dir`; rows also go to `out` (JSON)
    when given. max_steps caps the steps per epoch (tests)."""
    if mode not in DEFAULT_N:
        raise ValueError(f"unknown experiment {mode!r}; choose from {', '.join(DEFAULT_N)}")
    n = DEFAULT_N[mode] if n is None else n
    device = resolve_device(device)
    data = data if data is not None else load_mnist(data_dir)
    classifier = load(Path(weights_dir) / "classifier.safetensors", device).module
    if mode == "posthoc":
        if weights is None:
            raise ValueError("posthoc needs the generator checkpoint to score (weights=)")
        rows = posthoc(Path(weights), data, classifier, n, seed)
    else:
        rows = [pilot(name, overrides or {}, epochs, data, classifier, n, seed, device, max_steps)]
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows
