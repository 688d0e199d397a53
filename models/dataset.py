"""The labelled synthetic dataset a (model, seed, digits) stands for: one fixed, endless sequence.

Item i's latent and label depend only on (seed, digits, i), never on which slice asked for it:
the sequence is cut into blocks of BLOCK items, block b draws its latents from its own CPU
generator (seeded from seed and b through SHA-256, so neighbouring seeds or blocks are unrelated
streams), and a slice [offset, offset + n) is computed block by block. So `offset=900&n=100` gives
exactly items 900-999 of `n=1000`, and a client can fetch a large set in pages and resume anywhere.

Labels: for a class-conditional generator, item i is asked for class digits[i % len(digits)]
(equal shares, interleaved, exact by construction: the latent is drawn from that class's part of
the latent space). A model without classes draws plain N(0, I) latents; its labels come from a
classifier afterwards (the caller's job: see label_source).
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from models.sampling import classify_u8, generate_u8, is_conditional

BLOCK = 1024  # items per independently seeded block
ALL_DIGITS = tuple(range(10))


def label_source(module: nn.Module) -> str:
    """`generator`: labels are the classes asked for; `classifier`: a classifier's verdict."""
    return "generator" if is_conditional(module) else "classifier"


def block_generator(seed: int, block: int) -> torch.Generator:
    digest = hashlib.sha256(f"digitgen-dataset:{seed}:{block}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def block_labels(block: int, digits: tuple[int, ...]) -> torch.Tensor:
    """The classes asked for in a block: digits[i % len(digits)] for the block's item indices i."""
    index = torch.arange(block * BLOCK, (block + 1) * BLOCK)
    return torch.tensor(digits)[index % len(digits)]


def block_latents(module: nn.Module, seed: int, block: int,
                  digits: tuple[int, ...] = ALL_DIGITS) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(latents (BLOCK, latent_dim) on the CPU, the classes asked for (BLOCK,) or None for a model
    without classes) of one block of the sequence."""
    g = block_generator(seed, block)
    if is_conditional(module):
        labels = block_labels(block, digits)
        return module.latents_for_classes(labels, generator=g), labels
    return torch.randn(BLOCK, module.latent_dim, generator=g), None


def blocks(offset: int, n: int):
    """(block, first row, last row + 1) for each block the slice [offset, offset + n) touches."""
    end = offset + n
    for block in range(offset // BLOCK, (end - 1) // BLOCK + 1):
        start = block * BLOCK
        yield block, max(offset, start) - start, min(end, start + BLOCK) - start


def chunks(lo: int, hi: int, chunk: int):
    """The chunk-aligned row ranges of a block that cover rows [lo, hi): every item is always
    computed in the same forward pass of `chunk` rows with the same neighbours, whatever slice
    asked for it, so its bytes cannot depend on the slice (kernels may pick other algorithms, and
    round differently, for other batch sizes)."""
    for start in range(lo // chunk * chunk, hi, chunk):
        yield start, min(start + chunk, BLOCK)


CHUNK = 256
"""Rows per forward pass when making the sequence: fixed and aligned within each block for every
model and device (see chunks)."""


@torch.inference_mode()
def rows(module: nn.Module, seed: int, block: int, lo: int, hi: int, *, digits: tuple[int, ...] = ALL_DIGITS,
         device: torch.device | str = "cpu", classifier: nn.Module | None = None,
         classifier_device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [lo, hi) of one block of the sequence: uint8 images (hi - lo, 1, 28, 28) and uint8 labels
    (hi - lo,) on the CPU, the classes asked for, or `classifier`'s verdict for a model without classes."""
    latents, asked = block_latents(module, seed, block, digits)
    if asked is None and classifier is None:
        raise ValueError("a model without classes needs a classifier to label its samples")
    images, labels = [], []
    for start, end in chunks(lo, hi, CHUNK):
        part = generate_u8(module, latents[start:end], device=device)
        if asked is None:
            classes, _ = classify_u8(classifier, part, device=classifier_device)
        else:
            classes = asked[start:end]
        keep = slice(max(lo - start, 0), min(hi, end) - start)
        images.append(part[keep])
        labels.append(classes[keep])
    return torch.cat(images), torch.cat(labels).to(torch.uint8)


def make(module: nn.Module, n: int, seed: int, *, offset: int = 0, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Items [offset, offset + n) of the sequence, whole: what GET /dataset streams (kwargs: see rows)."""
    parts = [rows(module, seed, block, lo, hi, **kwargs) for block, lo, hi in blocks(offset, n)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
