"""Predict step of every endpoint: tensors in, tensors out, on the registry's device.

Torch work runs in one inference thread (`Inference.executor`), off the event loop, with one
exception: sampling and /reconstruct go through a Batcher per model, which runs batches that fit
the event loop's time budget (DIGITGEN_INLINE_BUDGET_MS, a few milliseconds) in place, because for
them the hand-off to the thread costs more than the work (service/batching.py).
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from models.latent import interpolate
from service.batching import Batcher, Finish
from service.imaging import to_uint8
from service.metrics import Metrics
from service.registry import Registry, ServedModel


# Rows per forward pass of a convolutional model on the CPU. The bundled DCGAN makes ~20 % more
# images/s in chunks of 128-256 than in one pass of 1024 (its activations stop fitting in cache);
# an MLP is the other way round (one big GEMM: 358k images/s at 1024 vs 242k at 128), so MLPs are
# not chunked. Measured on the 2-core machine; results per row are the same either way.
CPU_CHUNK = 128


def _chunked_on_cpu(model: ServedModel) -> bool:
    return model.device.type == "cpu" and getattr(model.module.config, "arch", "mlp") != "mlp"


def inline_rows(model: ServedModel, budget_ms: float) -> int:
    """The largest batch of this model that fits the event loop's time budget: 0 on a GPU (a
    forward pass there ends in a wait for the device) or without a measured cost."""
    if model.device.type != "cpu" or not model.seconds_per_row or budget_ms <= 0:
        return 0
    return int(budget_ms / 1000 / model.seconds_per_row)


class DigitNotFound(RuntimeError):
    """Rejection sampling could not find enough samples of the requested digit."""


def latents_for_seed(seed: int, n: int, latent_dim: int) -> torch.Tensor:
    """The n latents a seed stands for: N(0, I) draws from a CPU generator, so the same seed gives
    the same latents on every machine and device. (n, latent_dim) float32 on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=g)


@dataclass
class Classified:
    digits: torch.Tensor  # (n,) int64
    confidence: torch.Tensor  # (n,) float32


class Inference:
    def __init__(self, registry: Registry, metrics: Metrics, max_batch_size: int, batch_wait_ms: float,
                 digit_max_rounds: int, digit_min_confidence: float, inline_budget_ms: float = 0.0,
                 torch_threads: int | None = None):
        self.registry = registry
        self.metrics = metrics
        # one thread: torch already parallelises inside an op, and one thread keeps batches in order
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="digitgen-infer",
            # torch's intra-op thread count is per thread: the event loop keeps one (service/main.py)
            initializer=torch.set_num_threads if torch_threads else None, initargs=(torch_threads,) if torch_threads else ())
        self.digit_max_rounds = digit_max_rounds
        self.digit_min_confidence = digit_min_confidence
        self.batchers: dict[str, Batcher] = {}
        self.inline_rows: dict[str, int] = {}
        self.reconstructors: dict[str, Batcher] = {}
        for name, model in registry.models.items():
            if model.is_generative:
                self.inline_rows[name] = inline_rows(model, inline_budget_ms)
                self.batchers[name] = Batcher(
                    lambda z, m=model: self._generate_u8(m, z), self.executor, max_batch_size, batch_wait_ms,
                    on_batch=metrics.batch_size.labels(name).observe, inline_rows=self.inline_rows[name],
                )
            if model.kind == "vae":
                # encoder + decoder: about twice the decoder's cost per row (the encoder mirrors it)
                self.reconstructors[name] = Batcher(
                    lambda x, m=model: self._reconstruct_u8(m, x), self.executor, max_batch_size, batch_wait_ms,
                    inline_rows=self.inline_rows[name] // 2,
                )

    def start(self) -> None:
        for batcher in [*self.batchers.values(), *self.reconstructors.values()]:
            batcher.start()

    async def stop(self) -> None:
        for batcher in [*self.batchers.values(), *self.reconstructors.values()]:
            await batcher.stop()
        self.executor.shutdown(wait=True)

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ---- thread-side work (tensors in, tensors out) ----------------------------------------

    @staticmethod
    @torch.inference_mode()
    def _generate_u8(model: ServedModel, latents: torch.Tensor) -> torch.Tensor:
        latents = latents.to(model.device, non_blocking=True)
        if latents.shape[0] <= CPU_CHUNK or not _chunked_on_cpu(model):
            return to_uint8(model.module.generate(latents))
        return torch.cat([to_uint8(model.module.generate(part)) for part in latents.split(CPU_CHUNK)])

    @torch.inference_mode()
    def classify(self, images_u8: torch.Tensor) -> Classified:
        classifier = self.registry.classifier
        x = images_u8.to(classifier.device).float().div_(255)
        probs = torch.softmax(classifier.module(x), dim=1)
        confidence, digits = probs.max(dim=1)
        return Classified(digits.cpu(), confidence.cpu())

    @torch.inference_mode()
    def sample_digit(self, model: ServedModel, digit: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rejection sampling: draw candidate latents in rounds from the seed's stream, keep those the
        classifier labels `digit` with at least the minimum confidence. Returns (latents, images_u8)."""
        g = torch.Generator().manual_seed(seed)
        kept_z, kept_x = [], []
        found = 0
        # a class-conditional generator draws every candidate from the digit's part of the latent space
        # (the classifier still checks each one); an unconditional one hits any given digit ~10 % of the time
        conditional = getattr(model.module, "num_classes", 0) == 10
        candidates = max(16, n + n // 2) if conditional else max(64, 12 * n)
        for _ in range(self.digit_max_rounds):
            if conditional:
                z = model.module.latents_for_classes(torch.full((candidates,), digit), generator=g)
            else:
                z = torch.randn(candidates, model.latent_dim, generator=g)
            images = self._generate_u8(model, z)
            verdict = self.classify(images)
            keep = (verdict.digits == digit) & (verdict.confidence >= self.digit_min_confidence)
            kept_z.append(z[keep])
            kept_x.append(images[keep])
            found += int(keep.sum())
            if found >= n:
                break
        if found < n:
            raise DigitNotFound(
                f"model {model.name!r} produced only {found} of {n} samples of digit {digit} in "
                f"{self.digit_max_rounds * candidates} tries; ask for fewer or use another model"
            )
        self.metrics.images.labels(model.name).inc(n)
        return torch.cat(kept_z)[:n], torch.cat(kept_x)[:n]

    @torch.inference_mode()
    def encode(self, model: ServedModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images: (n, 1, 28, 28) float in [0, 1] -> mu, logvar (n, D) on the CPU."""
        mu, logvar = model.module.encode(images.to(model.device))
        return mu.cpu(), logvar.cpu()

    @staticmethod
    @torch.inference_mode()
    def _reconstruct_u8(model: ServedModel, images: torch.Tensor) -> torch.Tensor:
        mu, _ = model.module.encode(images.to(model.device, non_blocking=True))
        return to_uint8(model.module.decode(mu))

    async def reconstruct(self, model: ServedModel, images: torch.Tensor) -> torch.Tensor:
        """Batched: decoder mean at the posterior mean, deterministic. (n, 1, 28, 28) float ->
        uint8 (n, 1, 28, 28). Concurrent uploads share a forward pass like samples do: one upload
        alone streams all of the VAE's weights for a single row."""
        output = await self.reconstructors[model.name].submit(images)
        self.metrics.images.labels(model.name).inc(images.shape[0])
        return output

    def interpolate_latents(self, z_a: torch.Tensor, z_b: torch.Tensor, steps: int, method: str) -> torch.Tensor:
        return interpolate(z_a.double(), z_b.double(), steps, method).float()

    async def generate(self, model: ServedModel, latents: torch.Tensor, finish: Finish | None = None):
        """Batched: (n, D) latents -> uint8 (n, 1, 28, 28), or what `finish` (e.g. an encoder, run
        right after the batch's forward pass, wherever that ran) makes of them."""
        result = await self.batchers[model.name].submit(latents, finish)
        self.metrics.images.labels(model.name).inc(latents.shape[0])
        return result
