"""The predict step of every endpoint, tensors in and out on the registry's device: batched sampling and
reconstruction (service/batching.py), everything else in the one inference thread (ARCHITECTURE.md)."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import torch

from models import synthetic
from models.sampling import classify_u8, generate_u8, sample_digit, to_uint8
from service.batching import Batcher, Finish
from service.config import Settings
from service.metrics import Metrics
from service.registry import Registry, ServedModel

# rows per forward pass of a convolutional model on the CPU, where a big pass's activations leave the cache
# (an MLP is fastest as one GEMM); the same results per row either way (benchmarks/chunks.py)
CPU_CHUNK = 128


def _chunk(model: ServedModel) -> int | None:
    """Rows per forward pass: CPU_CHUNK for a convolutional model on the CPU, else all in one."""
    convolutional = getattr(model.module.config, "arch", "mlp") != "mlp"
    return CPU_CHUNK if model.device.type == "cpu" and convolutional else None


def inline_rows(model: ServedModel, budget_ms: float) -> int:
    """The largest batch of this model that fits the event loop's time budget: 0 on a GPU (a
    forward pass there ends in a wait for the device) or without a measured cost."""
    if model.device.type != "cpu" or not model.seconds_per_row or budget_ms <= 0:
        return 0
    return int(budget_ms / 1000 / model.seconds_per_row)


class Inference:
    def __init__(self, registry: Registry, metrics: Metrics, settings: Settings, torch_threads: int):
        """torch_threads: intra-op threads of the inference thread (service/main.py:configure_torch)."""
        self.registry = registry
        self.metrics = metrics
        # one thread: torch parallelises inside an op, and one thread keeps batches in order
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitgen-infer",
                                           initializer=torch.set_num_threads, initargs=(torch_threads,))
        self.digit_max_rounds = settings.digit_max_rounds
        self.digit_min_confidence = settings.digit_min_confidence
        self.batchers: dict[str, Batcher] = {}
        self.inline_rows: dict[str, int] = {}
        self.reconstructors: dict[str, Batcher] = {}
        batching = {"max_batch_size": settings.max_batch_size, "wait_ms": settings.batch_wait_ms}
        for name, model in registry.models.items():
            if model.is_generative:
                self.inline_rows[name] = inline_rows(model, settings.inline_budget_ms)
                self.batchers[name] = Batcher(
                    lambda z, m=model: self._generate_u8(m, z), self.executor, **batching,
                    on_batch=metrics.batch_size.labels(name).observe, inline_rows=self.inline_rows[name],
                )
            if model.kind == "vae":
                # encoder + decoder: about twice the decoder's cost per row (the encoder mirrors it)
                self.reconstructors[name] = Batcher(
                    lambda x, m=model: self._reconstruct_u8(m, x), self.executor, **batching,
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

    @staticmethod
    def _generate_u8(model: ServedModel, latents: torch.Tensor) -> torch.Tensor:
        return generate_u8(model.module, latents, device=model.device,
                           chunk=_chunk(model))

    @staticmethod
    def classify(judge: ServedModel, images_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(digits, confidence), each (n,)."""
        return classify_u8(judge.module, images_u8, device=judge.device)

    def min_confidence(self, model: ServedModel) -> float:
        """What a digit=/label= sample of this model needs: the setting, else its dataset's default."""
        return model.dataset.min_confidence if self.digit_min_confidence is None else self.digit_min_confidence

    def sample_digit(self, model: ServedModel, digit: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`digit=`/`label=`: rejection sampling judged by the model's classifier (models/sampling.py).
        Returns (latents, images_u8)."""
        classifier = self.registry.judge(model)
        latents, images = sample_digit(model.module, classifier.module, digit, n, seed,
                                       max_rounds=self.digit_max_rounds, min_confidence=self.min_confidence(model),
                                       device=model.device, chunk=_chunk(model), name=model.name,
                                       classifier_device=classifier.device)
        self.metrics.images.labels(model.name).inc(n)
        return latents, images

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

    def dataset_rows(self, model: ServedModel, seed: int, block: int, digits: tuple[int, ...], lo: int,
                     hi: int, verified: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows [lo, hi) of one block of the labelled sequence (models/synthetic.py): uint8 images and
        labels, the classes asked for (verified: and confirmed) or the model's classifier's verdict."""
        classifier = self.registry.judge(model)
        images, labels = synthetic.rows(model.module, seed, block, lo, hi, digits=digits, device=model.device,
                                      classifier=classifier.module if classifier else None,
                                      classifier_device=classifier.device if classifier else "cpu",
                                      verified=verified)
        self.metrics.images.labels(model.name).inc(hi - lo)
        return images, labels

    async def generate(self, model: ServedModel, latents: torch.Tensor, finish: Finish | None = None):
        """Batched: (n, D) latents -> uint8 (n, 1, 28, 28), or what `finish` (e.g. an encoder, run
        right after the batch's forward pass, wherever that ran) makes of them."""
        result = await self.batchers[model.name].submit(latents, finish)
        self.metrics.images.labels(model.name).inc(latents.shape[0])
        return result
