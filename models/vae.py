"""Variational auto-encoder (Kingma & Welling, 2014) with MLP encoder and decoder.

The course report's network is `VAEConfig()` with its defaults:
encoder Linear(784,300)-ReLU-Linear(300,32) -> (mu, logvar) of a 16-d latent,
decoder Linear(16,300)-ReLU-Linear(300,784)-Sigmoid.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.shapes import IMAGE_SHAPE, PIXELS


@dataclass
class VAEConfig:
    latent_dim: int = 16
    hidden_dims: tuple[int, ...] = (300,)  # encoder widths; the decoder mirrors them
    activation: str = "relu"  # relu | leaky_relu


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.2)}[name]


def _mlp(widths: list[int], activation: str) -> nn.Sequential:
    """Linear layers between consecutive widths, with an activation after all but the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        hidden = list(config.hidden_dims)
        self.encoder = _mlp([PIXELS, *hidden, 2 * config.latent_dim], config.activation)
        self.decoder = _mlp([config.latent_dim, *reversed(hidden), PIXELS], config.activation)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 1, 28, 28) or (B, 784) in [0, 1] -> mu, logvar: (B, latent_dim)."""
        mu, logvar = self.encoder(x.reshape(x.shape[0], PIXELS)).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> Bernoulli logits (B, 784)."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> pixel probabilities (B, 1, 28, 28)."""
        return torch.sigmoid(self.decode_logits(z)).reshape(-1, *IMAGE_SHAPE)

    # The service treats every generative model alike: latents in, [0, 1] pixels out.
    generate = decode

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (decoder logits (B, 784), mu, logvar)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode_logits(z), mu, logvar


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Negative ELBO per example, in nats, summed over pixels and averaged over the batch.

    Reconstruction term: Bernoulli likelihood of the pixel intensities (Kingma & Welling 2014,
    appendix C.1), i.e. binary cross-entropy against the target intensities in [0, 1].
    KL term: analytic KL(N(mu, sigma^2) || N(0, I)) (same paper, appendix B).

    Why this cannot go negative while the report's loss did: the report used a Gaussian
    likelihood with a learned/small variance. A Gaussian is a density over continuous values;
    it can exceed 1, so -log p(x|z) is unbounded below and the "loss" went negative.
    Bernoulli probabilities are at most 1, and the cross-entropy against a target t in [0, 1] is
    at least the target's own entropy H(t) >= 0; the KL is >= 0 too, so the sum is >= 0.
    """
    x = x.reshape(x.shape[0], PIXELS)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (reconstruction + kl) / x.shape[0]
