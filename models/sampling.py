"""Sampling from a generative model, shared by the service and the trainer's evaluation: the
latents a seed stands for, 8-bit quantisation as served, and `digit=`'s rejection sampling with
a digit classifier as the judge.

Everything is deterministic for a given seed: latents are drawn from a CPU torch.Generator, so
the same seed gives the same latents on every machine and device.
"""
from __future__ import annotations

import torch
from torch import nn

DIGIT_MIN_CONFIDENCE = 0.999
"""Default classifier confidence a `digit=` sample of MNIST needs (each dataset's is its
DatasetInfo.min_confidence; the service's DIGITGEN_DIGIT_MIN_CONFIDENCE overrides them all)."""
DIGIT_MAX_ROUNDS = 8
"""Default rounds of candidates `digit=` draws before giving up (DIGITGEN_DIGIT_MAX_ROUNDS)."""


class DigitNotFound(RuntimeError):
    """Rejection sampling could not find enough samples of the requested digit."""


def is_conditional(module: nn.Module) -> bool:
    """A class-conditional generator over the ten digits (the class read from its latent)."""
    return getattr(module, "num_classes", 0) == 10


def latents_for_seed(seed: int, n: int, latent_dim: int) -> torch.Tensor:
    """The n latents a seed stands for: N(0, I) draws from a CPU generator, so the same seed gives
    the same latents on every machine and device. (n, latent_dim) float32 on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=g)


def prior_draws(module: nn.Module, noise: torch.Tensor) -> torch.Tensor:
    """N(0, I) noise (n, latent_dim) -> the model's latents for it, on the noise's device: the noise
    itself for a model with a standard normal prior (every GAN here, a plain VAE), a draw from the
    learned prior for a VAE with one (models/vae.py: VAE.prior_latents)."""
    draw = getattr(module, "prior_latents", None)
    return noise if draw is None else draw(noise).to(noise.device)


def seed_latents(module: nn.Module, seed: int, n: int) -> torch.Tensor:
    """The n latents a seed stands for with this model: prior_draws of latents_for_seed."""
    return prior_draws(module, latents_for_seed(seed, n, module.latent_dim))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) float in [0, 1] -> uint8 on the CPU: round(255 x), clamped to [0, 255]."""
    return images.mul(255).round_().clamp_(0, 255).to(device="cpu", dtype=torch.uint8)


@torch.inference_mode()
def generate_u8(generator_module: nn.Module, latents: torch.Tensor, *, device: torch.device | str,
                chunk: int | None = None) -> torch.Tensor:
    """(n, latent_dim) latents -> uint8 images (n, 1, 28, 28) on the CPU, from the module's
    `generate` on `device`; with `chunk`, in forward passes of at most that many rows."""
    latents = latents.to(device, non_blocking=True)
    if chunk is None or latents.shape[0] <= chunk:
        return to_uint8(generator_module.generate(latents))
    return torch.cat([to_uint8(generator_module.generate(part)) for part in latents.split(chunk)])


@torch.inference_mode()
def classify_u8(classifier_module: nn.Module, images_u8: torch.Tensor, *,
                device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (n, 1, 28, 28) -> (digits (n,) int64, confidence (n,) float32), both on the
    CPU: the classifier's most probable class and its softmax probability."""
    x = images_u8.to(device).float().div_(255)
    probs = torch.softmax(classifier_module(x), dim=1)
    confidence, digits = probs.max(dim=1)
    return digits.cpu(), confidence.cpu()


@torch.inference_mode()
def sample_digit(generator_module: nn.Module, classifier_module: nn.Module, digit: int, n: int, seed: int, *,
                 max_rounds: int, min_confidence: float, device: torch.device | str,
                 chunk: int | None = None, name: str = "generator",
                 classifier_device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rejection sampling: draw candidate latents in rounds from the seed's stream, keep those the
    classifier labels `digit` with at least `min_confidence`. Returns (latents (n, D) on the CPU,
    images_u8 (n, 1, 28, 28)); raises DigitNotFound after `max_rounds` rounds without n of them.

    A class-conditional generator (num_classes == 10) draws every candidate from the digit's part of
    the latent space, max(16, 1.5 n) per round (the classifier still checks each one); an
    unconditional one hits any given digit ~10 % of the time and draws max(64, 12 n) per round.
    Both modules run on `device`; `chunk` is generate_u8's (rows per forward pass; results per row
    do not depend on it); `name` is the model's name in DigitNotFound's message; the classifier runs on
    `classifier_device` (default: `device`)."""
    g = torch.Generator().manual_seed(seed)
    kept_z, kept_x = [], []
    found = 0
    conditional = is_conditional(generator_module)
    candidates = max(16, n + n // 2) if conditional else max(64, 12 * n)
    for _ in range(max_rounds):
        if conditional:
            z = generator_module.latents_for_classes(torch.full((candidates,), digit), generator=g)
        else:
            z = prior_draws(generator_module, torch.randn(candidates, generator_module.latent_dim, generator=g))
        images = generate_u8(generator_module, z, device=device, chunk=chunk)
        digits, confidence = classify_u8(classifier_module, images,
                                         device=device if classifier_device is None else classifier_device)
        keep = (digits == digit) & (confidence >= min_confidence)
        kept_z.append(z[keep])
        kept_x.append(images[keep])
        found += int(keep.sum())
        if found >= n:
            break
    if found < n:
        raise DigitNotFound(
            f"model {name!r} produced only {found} of {n} samples of digit {digit} in "
            f"{max_rounds * candidates} tries; ask for fewer or use another model"
        )
    return torch.cat(kept_z)[:n], torch.cat(kept_x)[:n]
