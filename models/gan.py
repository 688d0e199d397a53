"""Generators and discriminators: the report's MLP pair and a small DCGAN, optionally
class-conditional (the class read from the latent; a projection discriminator).

The report's networks are the defaults: generator Linear(16,300)-ReLU-Linear(300,784) (no
output activation), discriminator Linear(784,300)-ReLU-Linear(300,1)-Sigmoid.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from models.shapes import IMAGE_SHAPE, PIXELS


@dataclass
class GeneratorConfig:
    latent_dim: int = 16
    arch: str = "mlp"  # mlp | dcgan
    hidden_dim: int = 300  # mlp: hidden width; dcgan: channels of the 7x7 feature map
    activation: str = "relu"  # relu | leaky_relu (mlp only)
    output: str = "linear"  # linear (report; clamped to [0,1] for images) | sigmoid | tanh
    # > 0: a class-conditional generator whose class is *read from the latent* (see latent_classes), so
    # it still maps a plain N(0, I) latent to an image and every caller of forward/generate is unchanged
    num_classes: int = 0
    # the classes' shares (sum 1) that z[:, 0]'s quantile buckets get; empty = equal shares
    class_prior: tuple[float, ...] = ()
    # dcgan: BatchNorm after the linear layer and after the first transposed convolution. False: the
    # same network with each BatchNorm folded into the layer before it (fold_batchnorm), for serving
    batchnorm: bool = True


@dataclass
class DiscriminatorConfig:
    arch: str = "mlp"  # mlp | dcgan
    hidden_dim: int = 300  # mlp: hidden width; dcgan: channels of the first conv
    activation: str = "relu"  # relu | leaky_relu
    dropout: float = 0.0
    spectral_norm: bool = False
    sigmoid: bool = True  # report: D outputs a probability; hinge/logit losses want raw scores
    num_classes: int = 0  # > 0: projection discriminator (Miyato & Koyama 2018), D(x, class)


class ToImage(nn.ConvTranspose2d):
    """The generator's last layer, a stride-2 transposed convolution to one channel.

    On the CPU, oneDNN's kernel for a transposed convolution with a single output channel is
    several times slower than the same arithmetic written as one matmul and a col2im (`F.fold`), and
    this layer is a large share of the served DCGAN's forward pass (figures: benchmarks/README.md,
    "Before those"). Inference (no autograd) on the CPU takes the matmul + fold path, equal
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
            bn = config.batchnorm
            self.net = nn.Sequential(
                nn.Linear(config.latent_dim + config.num_classes, c * 7 * 7, bias=not bn),
                nn.Unflatten(1, (c, 7, 7)),
                # in place: no new tensor per activation
                *([nn.BatchNorm2d(c)] if bn else []), nn.ReLU(inplace=True),
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=not bn),  # 7 -> 14
                *([nn.BatchNorm2d(c // 2)] if bn else []), nn.ReLU(inplace=True),
                ToImage(c // 2, 1, 4, 2, 1),  # 14 -> 28
            )
        else:
            raise ValueError(f"unknown generator arch {config.arch!r}")
        if config.num_classes:
            if config.arch != "dcgan":
                raise ValueError("a class-conditional generator needs arch='dcgan'")
            k = config.num_classes
            prior = torch.tensor(config.class_prior or [1 / k] * k, dtype=torch.float64)
            if len(prior) != k or (prior <= 0).any() or abs(float(prior.sum()) - 1) > 1e-6:
                raise ValueError(f"class_prior must be {k} positive shares summing to 1")
            cdf = prior.cumsum(0) / prior.sum()
            # z[:, 0] <= edges[0] is class 0, edges[0] < z[:, 0] <= edges[1] is class 1, ...: under
            # z ~ N(0, I) class c comes up with probability prior[c]. Not saved: derived from the config.
            self.register_buffer("class_edges", torch.special.ndtri(cdf[:-1]).float(), persistent=False)
            self.register_buffer("class_cdf", torch.cat([cdf.new_zeros(1), cdf]).float(), persistent=False)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def latent_classes(self, z: torch.Tensor) -> torch.Tensor:
        """The class a latent asks for: the quantile bucket its first coordinate falls in.

        Why in the latent rather than a separate input: an unconditional generator has to carve one
        connected latent space into ten digits, and the latents near the borders come out as blends
        that are no digit at all (about a quarter of the unconditional DCGAN's samples, by the
        classifier's confidence). Here the borders are sharp by construction, while the service's
        contract (a latent is a plain N(0, I) vector; seeds, /decode and /interpolate) stays as it is.
        """
        return torch.bucketize(z[:, 0].contiguous(), self.class_edges)

    def latents_for_classes(self, classes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """N(0, I) latents conditioned on their class: z[:, 0] drawn from its bucket (inverse CDF)."""
        n = len(classes)
        device = generator.device if generator is not None else self.class_edges.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        u = torch.rand(n, generator=generator, device=device)
        cdf, classes = self.class_cdf.to(device), classes.to(device)
        lo, hi = cdf[classes], cdf[classes + 1]
        q = (lo + u * (hi - lo)).clamp(1e-6, 1 - 1e-6)
        z[:, 0] = torch.special.ndtri(q)
        return z

    def _pre_activation(self, z: torch.Tensor) -> torch.Tensor:
        """The network's output before the output activation, (B, 1, 28, 28)."""
        if self.config.num_classes:
            onehot = F.one_hot(self.latent_classes(z), self.config.num_classes).to(z.dtype)
            z = torch.cat([z, onehot], dim=1)
        return self.net(z).reshape(-1, *IMAGE_SHAPE)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> images (B, 1, 28, 28) in the training data's range."""
        x = self._pre_activation(z)
        if self.config.output == "sigmoid":
            return torch.sigmoid(x)
        if self.config.output == "tanh":
            return torch.tanh(x)
        return x

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> pixel intensities (B, 1, 28, 28) in [0, 1]."""
        x = self._pre_activation(z)
        if self.config.output == "tanh":
            # (tanh(x) + 1) / 2 is sigmoid(2x): one pass over the pixels where tanh, add, halve and clamp
            # were four, in [0, 1] already
            return x.mul_(2).sigmoid_()
        if self.config.output == "sigmoid":
            return x.sigmoid_()
        return x.clamp_(0, 1)


@torch.no_grad()
def fold_batchnorm(generator: Generator) -> Generator:
    """The same dcgan generator in eval mode with each BatchNorm folded into the layer before it
    (scale the layer's output channels, add a bias): two fewer passes over the activations per
    forward, equal to the original within float rounding. For serving a generator whose training is
    done; a generator without BatchNorm is returned as it is."""
    config = generator.config
    if config.arch != "dcgan" or not config.batchnorm:
        return generator
    folded = Generator(dataclasses.replace(config, batchnorm=False)).to(next(generator.parameters()).device)
    linear, _, bn1, _, deconv, bn2, _, to_image = generator.net
    f_linear, _, _, f_deconv, _, f_image = folded.net

    def scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return scale, bn.bias - bn.running_mean * scale

    scale, shift = scale_shift(bn1)  # the linear layer's output feature c*49 + p is channel c of the 7x7 map
    area = linear.out_features // len(scale)
    f_linear.weight.copy_(linear.weight * scale.repeat_interleave(area)[:, None])
    f_linear.bias.copy_(shift.repeat_interleave(area))
    scale, shift = scale_shift(bn2)  # a transposed convolution's weight is (in, out, kh, kw)
    f_deconv.weight.copy_(deconv.weight * scale[None, :, None, None])
    f_deconv.bias.copy_(shift)
    f_image.load_state_dict(to_image.state_dict())
    return folded.eval().requires_grad_(False)


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
        self.embed = None
        if config.num_classes:
            if config.sigmoid:
                raise ValueError("a projection discriminator outputs raw scores: set sigmoid=False")
            # projection: score = head(phi(x)) + <embed(class), phi(x)>, phi = everything before the head
            self.embed = norm(nn.Embedding(config.num_classes, layers[-1].in_features))
        if config.sigmoid:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, 1, 28, 28) -> (B,) probability (sigmoid) or raw score; `classes` (B,) for a
        class-conditional (projection) discriminator, ignored otherwise."""
        if self.embed is None:
            return self.net(x).reshape(-1)
        if classes is None:
            raise ValueError("a class-conditional discriminator needs the images' classes")
        features = self.net[:-1](x)
        return self.net[-1](features).reshape(-1) + (self.embed(classes) * features).sum(dim=1)
