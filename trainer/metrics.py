"""Sample-quality and likelihood metrics, in the bundled classifier's feature space.

Inception-v3 weights cannot be fetched here, and for MNIST a domain classifier is the usual
feature space anyway: FID/KID use the classifier's 128-d penultimate features, IS its softmax.
FID, KID and IS themselves come from torchmetrics (custom feature extractor), not hand-written.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from models.classifier import DigitClassifier
from models.vae import gaussian_log_density


def _unit(x: torch.Tensor) -> torch.Tensor:
    """torchmetrics hands some metrics uint8 images (InceptionScore with normalize=True converts
    [0, 1] floats to bytes even for custom extractors); the classifier wants floats in [0, 1]."""
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


class ClassifierFeatures(nn.Module):
    """(B, 1, 28, 28) float in [0, 1] -> penultimate features (B, 128), for torchmetrics."""

    def __init__(self, classifier: DigitClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.config.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(_unit(x))


class ClassifierLogits(nn.Module):
    def __init__(self, classifier: DigitClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.config.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(_unit(x))


def class_histogram(probabilities: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Share of samples per predicted class. probabilities: (n, C) -> (C,)"""
    counts = torch.bincount(probabilities.argmax(1), minlength=num_classes).double()
    return counts / counts.sum()


def kl_to_uniform(histogram: torch.Tensor) -> float:
    """KL(histogram || uniform) in nats: 0 for balanced classes, log C for a single class."""
    c = histogram.numel()
    p = histogram[histogram > 0]
    return float((p * torch.log(p * c)).sum())


@torch.no_grad()
def image_metrics(fake: torch.Tensor, real: torch.Tensor, classifier: DigitClassifier, batch_size: int = 1000,
                  kid_subsets: int = 50, covered_share: float = 0.01) -> dict:
    """fake, real: (n, 1, 28, 28) float in [0, 1] on the classifier's device."""
    device = next(classifier.parameters()).device
    features = ClassifierFeatures(classifier).to(device)
    fid = FrechetInceptionDistance(feature=features, normalize=True).to(device)
    subset = min(1000, len(fake), len(real))
    kid = KernelInceptionDistance(feature=features, normalize=True, subsets=kid_subsets, subset_size=subset).to(device)
    inception = InceptionScore(feature=ClassifierLogits(classifier).to(device), normalize=True, splits=10).to(device)
    probabilities = []
    for images, is_real in ((real, True), (fake, False)):
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device)
            fid.update(batch, real=is_real)
            kid.update(batch, real=is_real)
            if not is_real:
                inception.update(batch)
                probabilities.append(torch.softmax(classifier(batch), dim=1).cpu())
    histogram = class_histogram(torch.cat(probabilities))
    with torch.random.fork_rng(devices=[]):  # KID draws random subsets: seed them, leave the caller's RNG alone
        torch.manual_seed(0)
        kid_mean, kid_std = kid.compute()
    is_mean, is_std = inception.compute()
    return {
        "n": len(fake),
        "fid": float(fid.compute()),
        "kid": float(kid_mean),
        "kid_std": float(kid_std),
        "inception_score": float(is_mean),
        "inception_score_std": float(is_std),
        "class_histogram": [round(float(v), 4) for v in histogram],
        "class_kl_to_uniform": kl_to_uniform(histogram),
        "digits_covered": int((histogram >= covered_share).sum()),
    }


class PixelPCAFeatures(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> the first principal components of raw pixels, fitted on real images:
    a feature space for FID that shares nothing with the classifier (for models trained on its features)."""

    def __init__(self, fitted_on: torch.Tensor, components: int = 50, seed: int = 0):
        super().__init__()
        from sklearn.decomposition import PCA
        pca = PCA(n_components=components, random_state=seed).fit(fitted_on.reshape(len(fitted_on), -1).cpu().numpy())
        self.register_buffer("mean", torch.from_numpy(pca.mean_).float())
        self.register_buffer("components", torch.from_numpy(pca.components_).float())
        self.num_features = components

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (_unit(x).reshape(len(x), -1) - self.mean) @ self.components.t()


@torch.no_grad()
def feature_fid(fake: torch.Tensor, real: torch.Tensor, features: nn.Module, batch_size: int = 1000) -> float:
    """FID between two image sets (n, 1, 28, 28) in [0, 1] in the given feature space (torchmetrics)."""
    fid = FrechetInceptionDistance(feature=features, normalize=True).to(fake.device)
    for images, is_real in ((real, True), (fake, False)):
        for start in range(0, len(images), batch_size):
            fid.update(images[start:start + batch_size], real=is_real)
    return float(fid.compute())


def multiply_adds(generator: nn.Module, latent_dim: int) -> int:
    """Multiply-adds of one image's forward pass through the linear and convolution layers."""
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += module.in_features * module.out_features
        elif isinstance(module, nn.ConvTranspose2d):  # every input pixel meets the whole kernel
            total += inputs[0][0].numel() * module.out_channels * math.prod(module.kernel_size) // module.groups
        elif isinstance(module, nn.Conv2d):  # every output pixel does
            total += output[0].numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)

    hooks = [m.register_forward_hook(count) for m in generator.modules()
             if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            generator.eval()(torch.zeros(1, latent_dim))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def generator_costs(generators: dict[str, nn.Module], batch: int = 16, threads: int = 1, rounds: int = 40,
                    passes: int = 10) -> dict[str, dict]:
    """What one image costs each generator on this CPU, timed side by side: in each of `rounds` rounds
    every generator runs `passes` forward passes of a `batch`-row batch (inference mode, `threads`
    intra-op threads), and a generator's figure is its median round, in microseconds per image, with
    its multiply-adds per image. Interleaving bills a slow spell of a shared machine to every generator
    alike, where timing them one after another would bill it to whichever ran then. A figure for
    benchmarks and sweeps, never an assertion."""
    import time
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    seconds: dict[str, list[float]] = {name: [] for name in generators}
    try:
        inputs = {name: torch.randn(batch, g.latent_dim, generator=torch.Generator().manual_seed(0))
                  for name, g in generators.items()}
        with torch.inference_mode():
            for name, g in generators.items():  # warm-up: oneDNN primitive caches, allocator
                for _ in range(20):
                    g.eval().generate(inputs[name])
            for _ in range(rounds):
                for name, g in generators.items():
                    start = time.perf_counter()
                    for _ in range(passes):
                        g.generate(inputs[name])
                    seconds[name].append((time.perf_counter() - start) / passes)
    finally:
        torch.set_num_threads(previous)
    out = {}
    for name, g in generators.items():
        times = sorted(seconds[name])
        out[name] = {"us_per_image": round(1e6 * times[len(times) // 2] / batch, 2), "batch": batch,
                     "threads": threads, "rounds": rounds, "multiply_adds_per_image": multiply_adds(g, g.latent_dim)}
    return out


@torch.no_grad()
def importance_sampled_log_likelihood(
    x: torch.Tensor,
    encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    k: int,
    chunk: int = 500,
    generator: torch.Generator | None = None,
    log_prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """log p(x) ~= logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k, z_i ~ q(z|x)
    (Burda et al. 2016, "Importance Weighted Autoencoders", eq. 8; the bound tightens as k grows).

    x: (b, ...) ; encode(x) -> q's (mu, logvar) (b, D); log_likelihood(x, z) with z (c, b, D) -> (c, b);
    log_prior(z) -> (c, b), the standard normal's when None.
    Returns (b,) log-likelihoods in nats. Samples are drawn in chunks of `chunk` to bound memory."""
    mu, logvar = encode(x)
    std = torch.exp(0.5 * logvar)
    log_weights = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        eps = torch.randn((c, *mu.shape), device=mu.device, generator=generator)
        z = mu + std * eps
        log_p_z = (gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)) if log_prior is None
                   else log_prior(z))
        log_q = gaussian_log_density(z, mu, logvar)
        log_weights.append(log_likelihood(x, z) + log_p_z - log_q)
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)


def bernoulli_log_likelihood(decode_logits: Callable[[torch.Tensor], torch.Tensor]):
    """log p(x|z) for binary x (b, 784) under a decoder returning Bernoulli logits."""
    def log_likelihood(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        c, b, d = z.shape
        logits = decode_logits(z.reshape(c * b, d)).reshape(c, b, -1)
        target = x.reshape(1, b, -1).expand_as(logits)
        return -nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
    return log_likelihood
