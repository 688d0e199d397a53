"""Generators and discriminators: the report's MLP pair and a small DCGAN.

The report's networks are the defaults: generator Linear(16,300)-ReLU-Linear(300,784) (no
output activation), discriminator Linear(784,300)-ReLU-Linear(300,1)-Sigmoid.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

PIXELS = 28 * 28


@dataclass
class GeneratorConfig:
    latent_dim: int = 16
    arch: str = "mlp"  # mlp | dcgan
    hidden_dim: int = 300  # mlp: hidden width; dcgan: channels of the 7x7 feature map
    activation: str = "relu"  # relu | leaky_relu (mlp only)
    output: str = "linear"  # linear (report; clamped to [0,1] for images) | sigmoid | tanh


@dataclass
class DiscriminatorConfig:
    arch: str = "mlp"  # mlp | dcgan
    hidden_dim: int = 300  # mlp: hidden width; dcgan: channels of the first conv
    activation: str = "relu"  # relu | leaky_relu
    dropout: float = 0.0
    spectral_norm: bool = False
    sigmoid: bool = True  # report: D outputs a probability; hinge/logit losses want raw scores


class ToImage(nn.ConvTranspose2d):
    """The generator's last layer, a stride-2 transposed convolution to one channel.

    On the CPU, oneDNN's kernel for a transposed convolution with a single output channel is
    5-8x slower than the same arithmetic written as one matmul and a col2im (`F.fold`) (measured
    on the 2-core machine, see benchmarks/README.md), and this layer was a third of the served
    DCGAN's forward pass. Inference (no autograd) on the CPU takes the matmul + fold path, equal
    to the library kernel within float rounding; training keeps the library kernel, so training
    numerics do not change. Same parameters and state-dict keys as nn.ConvTranspose2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.device.type != "cpu" or x.dim() != 4:
            return super().forward(x)
        b, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        cols = self.weight.reshape(c, -1).t() @ x.reshape(b, c, h * w)  # (b, out*kh*kw, h*w)
        size = ((h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        out = F.fold(cols, size, kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw))
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.2)}[name]


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c = config.hidden_dim
        if config.arch == "mlp":
            self.net = nn.Sequential(
                nn.Linear(config.latent_dim, c), _act(config.activation), nn.Linear(c, PIXELS)
            )
        elif config.arch == "dcgan":
            self.net = nn.Sequential(
                nn.Linear(config.latent_dim, c * 7 * 7, bias=False),
                nn.Unflatten(1, (c, 7, 7)),
                nn.BatchNorm2d(c), nn.ReLU(),
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),  # 7 -> 14
                nn.BatchNorm2d(c // 2), nn.ReLU(),
                ToImage(c // 2, 1, 4, 2, 1),  # 14 -> 28
            )
        else:
            raise ValueError(f"unknown generator arch {config.arch!r}")

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> images (B, 1, 28, 28) in the training data's range."""
        x = self.net(z).reshape(-1, 1, 28, 28)
        if self.config.output == "sigmoid":
            return torch.sigmoid(x)
        if self.config.output == "tanh":
            return torch.tanh(x)
        return x

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> pixel intensities (B, 1, 28, 28) in [0, 1]."""
        x = self.forward(z)
        if self.config.output == "tanh":
            x = (x + 1) / 2
        return x.clamp(0, 1)


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        norm = spectral_norm if config.spectral_norm else (lambda m: m)
        c = config.hidden_dim
        if config.arch == "mlp":
            layers: list[nn.Module] = [nn.Flatten(), norm(nn.Linear(PIXELS, c)), _act(config.activation)]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            layers.append(norm(nn.Linear(c, 1)))
        elif config.arch == "dcgan":
            layers = [
                norm(nn.Conv2d(1, c, 4, 2, 1)), _act(config.activation),  # 28 -> 14
                norm(nn.Conv2d(c, 2 * c, 4, 2, 1)), _act(config.activation),  # 14 -> 7
                nn.Flatten(),
                norm(nn.Linear(2 * c * 7 * 7, 1)),
            ]
        else:
            raise ValueError(f"unknown discriminator arch {config.arch!r}")
        if config.sigmoid:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) -> (B,) probability (sigmoid) or raw score."""
        return self.net(x).reshape(-1)
