"""Variational auto-encoders (Kingma & Welling, 2014): MLP or convolutional encoder and decoder, with
a standard normal prior, a VampPrior (Tomczak & Welling, 2018) or an exemplar prior.

An exemplar prior is the aggregate posterior of a labelled training set, kept per class:
p(z | c) = mean over the training images x_i of class c of q(z | x_i), stored as each image's
(mu, logvar). It is the prior a VampPrior approximates with K learned pseudo-inputs, taken at
K = N (Tomczak & Welling 2018, section 3; an exemplar VAE, Norouzi et al. 2020), and it makes the
VAE class-conditional with exact labels: a latent drawn for class c decodes to a variation of one of
class c's training digits. The price is that the samples stay close to the training digits;
`exemplar_scale` widens every posterior by a factor (a sampling temperature) for more variety.

The course report's network is `VAEConfig()` with its defaults:
encoder Linear(784,300)-ReLU-Linear(300,32) -> (mu, logvar) of a 16-d latent,
decoder Linear(16,300)-ReLU-Linear(300,784)-Sigmoid.

Latents live in one space for every caller: /encode returns q(z|x)'s mean and log-variance there and
/decode, /reconstruct and /interpolate decode points of it. What a seed stands for is a draw from the
model's prior in that space (`prior_latents`): plain N(0, I) noise for the standard prior, and for a
VampPrior a draw from its mixture, picked by the noise itself, so a seed is still just N(0, I) noise.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.shapes import IMAGE_SHAPE, PIXELS

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    latent_dim: int = 16
    hidden_dims: tuple[int, ...] = (300,)  # MLP widths of the encoder; the decoder mirrors them
    activation: str = "relu"  # relu | leaky_relu
    # mlp: hidden_dims only. conv: encoder Conv(1,c,4,2)-Conv(c,2c,4,2) (28 -> 14 -> 7) before its MLP;
    # decoder MLP to a 2c x 7 x 7 map, then ConvT(2c,c,4,2)-ConvT(c,1,4,2) (7 -> 14 -> 28) to logits
    encoder: str = "mlp"  # mlp | conv
    decoder: str = "mlp"  # mlp | conv
    channels: int = 32  # conv: c above
    prior: str = "normal"  # normal | vamp | exemplar
    pseudo_inputs: int = 0  # vamp: the mixture's K learned pseudo-inputs, p(z) = mean_k q(z | u_k)
    exemplars: int = 0  # exemplar: the N labelled training images whose posteriors make the prior
    # exemplar: each posterior's standard deviation is widened by this factor in the prior, a sampling
    # temperature that trades closeness to the training digits for variety (chosen on held-out digits)
    exemplar_scale: float = 1.0


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.2)}[name]


def _mlp(widths: list[int], activation: str, last_activation: bool = False) -> nn.Sequential:
    """Linear layers between consecutive widths, with an activation after all but the last (and after
    the last too with last_activation)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 or last_activation:
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension (broadcasting)."""
    return -0.5 * ((z - mu) ** 2 * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        hidden = list(config.hidden_dims)
        c, act = config.channels, config.activation
        if config.encoder == "mlp":
            self.encoder = _mlp([PIXELS, *hidden, 2 * config.latent_dim], act)
        elif config.encoder == "conv":
            self.encoder = nn.Sequential(
                nn.Unflatten(1, IMAGE_SHAPE),
                nn.Conv2d(1, c, 4, 2, 1), _activation(act),  # 28 -> 14
                nn.Conv2d(c, 2 * c, 4, 2, 1), _activation(act),  # 14 -> 7
                nn.Flatten(),
                _mlp([2 * c * 49, *hidden, 2 * config.latent_dim], act),
            )
        else:
            raise ValueError(f"unknown VAE encoder {config.encoder!r}")
        if config.decoder == "mlp":
            self.decoder = _mlp([config.latent_dim, *reversed(hidden), PIXELS], act)
        elif config.decoder == "conv":
            from models.gan import ToImage  # the fast one-channel transposed convolution on the CPU
            self.decoder = nn.Sequential(
                _mlp([config.latent_dim, *reversed(hidden), 2 * c * 49], act, last_activation=True),
                nn.Unflatten(1, (2 * c, 7, 7)),
                nn.ConvTranspose2d(2 * c, c, 4, 2, 1), _activation(act),  # 7 -> 14
                ToImage(c, 1, 4, 2, 1),  # 14 -> 28
                nn.Flatten(),
            )
        else:
            raise ValueError(f"unknown VAE decoder {config.decoder!r}")
        if config.prior == "vamp":
            if config.pseudo_inputs < 1:
                raise ValueError("a VampPrior needs pseudo_inputs >= 1")
            # the paper's initialisation: near mid-grey, kept in [0, 1] by a hard tanh when used
            self.pseudo_inputs = nn.Parameter(0.5 + 0.01 * torch.randn(config.pseudo_inputs, PIXELS))
        elif config.prior == "exemplar":
            if config.exemplars < 1 or not config.exemplar_scale > 0:
                raise ValueError("an exemplar prior needs exemplars >= 1 and exemplar_scale > 0")
            # half precision: its rounding (~1e-3 of a mean) is far inside each posterior's spread
            self.register_buffer("exemplar_mu", torch.zeros(config.exemplars, config.latent_dim, dtype=torch.float16))
            self.register_buffer("exemplar_logvar",
                                 torch.zeros(config.exemplars, config.latent_dim, dtype=torch.float16))
            self.register_buffer("exemplar_labels", torch.zeros(config.exemplars, dtype=torch.uint8))
        elif config.prior != "normal":
            raise ValueError(f"unknown VAE prior {config.prior!r}")
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # the prior's mixture, by weights version

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def num_classes(self) -> int:
        """10 with an exemplar prior (a latent can be drawn for a class), else 0."""
        return 10 if self.config.prior == "exemplar" else 0

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

    # --- the prior -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "VAE":
        # the prior's mixture is kept only between mode switches: a fused optimiser step changes the
        # weights without bumping their version counters, and training happens in train mode
        self._cache = {}
        return super().train(mode)

    def _weights_version(self) -> tuple[int, ...]:
        # an in-place change of a parameter outside a fused optimiser (a load, copy_) bumps its version
        if self.config.prior == "exemplar":
            return self.exemplar_mu._version, self.exemplar_logvar._version
        return tuple(p._version for p in (self.pseudo_inputs, *self.encoder.parameters()))

    def set_exemplars(self, mu: torch.Tensor, logvar: torch.Tensor, labels: torch.Tensor) -> None:
        """An exemplar prior's components: the training images' posteriors (N, latent_dim) and classes (N,)."""
        if mu.shape != self.exemplar_mu.shape or logvar.shape != mu.shape or labels.shape != mu.shape[:1]:
            raise ValueError(f"exemplars must be ({len(self.exemplar_mu)}, {self.latent_dim}) and "
                             f"({len(self.exemplar_mu)},), not {tuple(mu.shape)} and {tuple(labels.shape)}")
        if not torch.equal(torch.unique(labels.long()).cpu(), torch.arange(10)):
            raise ValueError("exemplar labels must be classes 0-9, each of them at least once")
        with torch.no_grad():
            self.exemplar_mu.copy_(mu)
            self.exemplar_logvar.copy_(logvar)
            self.exemplar_labels.copy_(labels)

    def prior_components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A VampPrior's mixture: q(z | u_k)'s (mu, logvar), each (K, latent_dim), on the module's device.
        In training, computed with gradients at each call; in eval mode, once without them and kept
        until the mode changes or a parameter is changed in place (a load)."""
        if self.config.prior == "exemplar":
            return self.exemplar_mu.float(), self.exemplar_logvar.float() + 2 * math.log(self.config.exemplar_scale)
        if self.training:
            return self.encode(F.hardtanh(self.pseudo_inputs, 0.0, 1.0))
        key = ("device", self.pseudo_inputs.device, self._weights_version())
        if key not in self._cache:
            # plain tensors even under inference_mode, so a later call with autograd may use them
            with torch.inference_mode(False), torch.no_grad():
                self._cache = {k: v for k, v in self._cache.items() if k[0] != "device"}
                self._cache[key] = self.encode(F.hardtanh(self.pseudo_inputs, 0.0, 1.0))
        return self._cache[key]

    def _draw_components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's (mu, sigma) for drawing latents: float64 on the CPU, computed from a float64
        copy of the encoder, so a seed's latents do not depend on the device the model runs on."""
        key = ("draw", self._weights_version())
        if key not in self._cache:
            with torch.inference_mode(False), torch.no_grad():
                if self.config.prior == "exemplar":
                    mu = self.exemplar_mu.detach().to("cpu", torch.float64)
                    sigma = torch.exp(0.5 * self.exemplar_logvar.detach().to("cpu", torch.float64))
                    sigma = sigma * self.config.exemplar_scale
                else:
                    encoder = copy.deepcopy(self.encoder).to("cpu", torch.float64)
                    pseudo = F.hardtanh(self.pseudo_inputs.detach().to("cpu", torch.float64), 0.0, 1.0)
                    mu, logvar = encoder(pseudo).chunk(2, dim=1)
                    sigma = torch.exp(0.5 * logvar)
                self._cache = {k: v for k, v in self._cache.items() if k[0] != "draw"}
                self._cache[key] = (mu, sigma)
        return self._cache[key]

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z (..., latent_dim) -> (...)."""
        if self.config.prior == "normal":
            return -0.5 * (z ** 2 + LOG_2PI).sum(-1)
        mu, logvar = self.prior_components()
        # every component's log-density as matrix products, (N, K) in memory rather than (N, K, D):
        # sum_d (z - mu)^2 / var = z^2 . (1/var) - 2 z . (mu/var) + sum_d mu^2/var. The expansion cancels
        # where z is near a narrow component's mean, the component that dominates the sum: outside
        # training it is computed in float64 (cheap at this size)
        dtype = z.dtype if self.training else torch.float64
        flat, mu, logvar = z.reshape(-1, z.shape[-1]).to(dtype), mu.to(dtype), logvar.to(dtype)
        precision = torch.exp(-logvar)
        quadratic = (flat ** 2) @ precision.t() - 2 * flat @ (mu * precision).t() + (mu ** 2 * precision).sum(1)
        log_components = -0.5 * (quadratic + logvar.sum(1) + z.shape[-1] * LOG_2PI)
        log_p = torch.logsumexp(log_components, dim=-1) - math.log(len(mu))
        return log_p.to(z.dtype).reshape(z.shape[:-1])

    @torch.no_grad()
    def prior_latents(self, noise: torch.Tensor) -> torch.Tensor:
        """N(0, I) noise (n, latent_dim) -> draws from the prior (n, latent_dim), on the noise's device
        and a function of the noise alone. Standard prior: the noise itself. VampPrior: u = Phi(noise[:, 0])
        picks component k = floor(K u), and K u - k (uniform, independent of k) gives that coordinate
        fresh N(0, 1) noise, so z = mu_k + sigma_k * noise' is an exact draw from the mixture."""
        if self.config.prior == "normal":
            return noise
        mu, sigma = self._draw_components()  # a VampPrior's pseudo-inputs or the exemplars
        k = len(mu)
        fresh = noise.detach().to("cpu", torch.float64)
        u = torch.special.ndtr(fresh[:, 0]) * k
        index = u.floor().clamp_(0, k - 1)
        fresh[:, 0] = torch.special.ndtri((u - index).clamp(1e-12, 1 - 1e-12))
        index = index.long()
        return (mu[index] + sigma[index] * fresh).to(noise.device, noise.dtype)

    def _class_members(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The exemplars' indices sorted by class (N,), and where each class starts among them (11,)."""
        key = ("members", self.exemplar_labels._version)
        if key not in self._cache:
            labels = self.exemplar_labels.detach().to("cpu", torch.int64)
            order = torch.argsort(labels, stable=True)
            starts = torch.zeros(11, dtype=torch.int64)
            starts[1:] = torch.bincount(labels, minlength=10).cumsum(0)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != "members"}
            self._cache[key] = (order, starts)
        return self._cache[key]

    @torch.no_grad()
    def latents_for_classes(self, classes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws from p(z | c) for each class c in `classes` (n,) -> (n, latent_dim) float32 on the CPU: an
        exemplar of class c picked uniformly, then its posterior's noise, both from `generator` (n uniforms,
        then n x latent_dim normals), in float64, so the same stream gives the same latents everywhere."""
        if self.config.prior != "exemplar":
            raise ValueError("only a VAE with an exemplar prior draws latents for a class")
        classes = classes.to("cpu", torch.int64)
        order, starts = self._class_members()
        counts = starts[1:] - starts[:-1]
        u = torch.rand(len(classes), generator=generator, dtype=torch.float64)
        noise = torch.randn(len(classes), self.latent_dim, generator=generator).to(torch.float64)
        pick = starts[classes] + (u * counts[classes]).long().clamp_(max=counts[classes] - 1)
        mu, sigma = self._draw_components()
        index = order[pick]
        return (mu[index] + sigma[index] * noise).float()

    # --- the objective -------------------------------------------------------------------------
    def neg_elbo(self, x: torch.Tensor, kl_weight: float = 1.0) -> torch.Tensor:
        """Per-example negative ELBO in nats, (B,): Bernoulli reconstruction plus kl_weight times the
        KL to the prior (analytic for the standard prior; for a VampPrior a one-sample estimate, which
        is the one-sample importance-weighted bound)."""
        if self.config.prior != "normal":
            return self.neg_iwae(x, 1, kl_weight)
        x = x.reshape(x.shape[0], PIXELS)
        logits, mu, logvar = self(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        return reconstruction + kl_weight * kl

    def neg_iwae(self, x: torch.Tensor, samples: int, kl_weight: float = 1.0) -> torch.Tensor:
        """Per-example negative importance-weighted bound (Burda et al. 2016) in nats, (B,): with
        log w_i = log p(x|z_i) - kl_weight (log q(z_i|x) - log p(z_i)) for `samples` draws z_i ~ q(z|x),
        -(logsumexp_i log w_i - log samples). One sample is the ELBO; more tighten the bound towards
        log p(x), at the decoder's cost times `samples`."""
        x = x.reshape(x.shape[0], PIXELS)
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(samples, *mu.shape, device=mu.device, dtype=mu.dtype)
        logits = self.decode_logits(z.reshape(-1, mu.shape[1])).reshape(samples, *x.shape)
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        log_w = log_px - kl_weight * (gaussian_log_density(z, mu, logvar) - self.log_prior(z))
        return -(torch.logsumexp(log_w, dim=0) - math.log(samples))


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Negative ELBO per example of a standard-prior VAE, in nats, summed over pixels and averaged
    over the batch.

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
