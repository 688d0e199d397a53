"""What every peer serves: the bundled `gan` generator, and for each request the bytes digitgen's
`GET /sample?model=gan&seed=S` answers (the seed's latent, the same forward pass and PNG writer), so
the frameworks are compared on identical work. Imported by the apps next to it (a folder of
scripts, not a package: they run in their own virtualenvs, which see this repository and its .venv
through a .pth file made by benchmarks/peers.py)."""
from __future__ import annotations

import secrets

import torch

from models.checkpoint import load
from models.paths import BUNDLED_WEIGHTS
from models.sampling import generate_u8, latents_for_seed
from service.imaging import encode_png

MODEL = "gan"


def load_generator(model: str = MODEL) -> torch.nn.Module:
    return load(BUNDLED_WEIGHTS / f"{model}.safetensors").module.eval()


def latent(seed: int | None, latent_dim: int) -> torch.Tensor:
    """The seed's latent (1, latent_dim); no seed: a fresh one, drawn as digitgen draws its seeds."""
    return latents_for_seed(secrets.randbits(31) if seed is None else int(seed), 1, latent_dim)


def pngs(generator: torch.nn.Module, latents: torch.Tensor) -> list[bytes]:
    """(n, latent_dim) latents -> n PNGs, one forward pass."""
    return [encode_png(image) for image in generate_u8(generator, latents, device="cpu")]
