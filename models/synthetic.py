"""The labelled synthetic dataset a (model, seed, digits) stands for: one fixed, endless sequence.

Item i's latent and label depend only on (seed, digits, i), never on which slice asked for it:
the sequence is cut into blocks of BLOCK items, block b draws its latents from its own CPU
generator (seeded from seed and b through SHA-256, so neighbouring seeds or blocks are unrelated
streams), and a slice [offset, offset + n) is computed block by block. So `offset=900&n=100` gives
exactly items 900-999 of `n=1000`, and a client can fetch a large set in pages and resume anywhere.

Labels: for a class-conditional generator, item i is asked for class digits[i % len(digits)]
(equal shares, interleaved, exact by construction: the latent is drawn from that class's part of
the latent space). A model without classes draws plain N(0, I) latents (for a VAE with a learned
prior, that noise mapped to a draw from the prior); its labels come from a classifier afterwards
(the caller's job: see label_source).

Verified sequences (`verified=True`, class-conditional generators): the same sequence, except that
an item the classifier does not see as the class asked for is drawn again, from the item's own
later rounds (round r of a block has its own seeded stream, and item i takes its i-th latent from
it), until the classifier agrees or VERIFY_ROUNDS rounds are spent. An item the classifier agrees
with in round 0 is the plain sequence's item, byte for byte; the redraws of a chunk depend only on
that chunk, so slices stay exact. What it buys: no off-class items (about 1.4 % of gan's), which
is label noise to a model trained on the set; what it costs: a classifier pass per item.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from models.sampling import classify_u8, generate_u8, is_conditional, prior_draws

DEFAULT_MODEL = "vae-exemplar"
"""The model /dataset serves when none is named: the one whose sets teach classifiers most like real
data does (reports/REPORT.md, "Utility"); /sample's default stays gan."""
FALLBACK_MODEL = "gan"
"""/dataset's default where DEFAULT_MODEL is not loaded (a weights folder without it)."""
BLOCK = 1024  # items per independently seeded block
ALL_DIGITS = tuple(range(10))
VERIFY_ROUNDS = 8
"""Draws per item in a verified sequence, the first included; an item still off-class after them
(for gan's ~1.4 % off-class rate, about one in 10^15) is kept as last drawn."""


def label_source(module: nn.Module) -> str:
    """`generator`: labels are the classes asked for; `classifier`: a classifier's verdict."""
    return "generator" if is_conditional(module) else "classifier"


def block_generator(seed: int, block: int, round_: int = 0) -> torch.Generator:
    """The stream of one block's latents; round_ > 0: the stream a verified sequence redraws from."""
    key = f"digitgen-dataset:{seed}:{block}" + (f":redraw{round_}" if round_ else "")
    digest = hashlib.sha256(key.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def block_labels(block: int, digits: tuple[int, ...]) -> torch.Tensor:
    """The classes asked for in a block: digits[i % len(digits)] for the block's item indices i."""
    index = torch.arange(block * BLOCK, (block + 1) * BLOCK)
    return torch.tensor(digits)[index % len(digits)]


def block_latents(module: nn.Module, seed: int, block: int, digits: tuple[int, ...] = ALL_DIGITS,
                  round_: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(latents (BLOCK, latent_dim) on the CPU, the classes asked for (BLOCK,) or None for a model
    without classes) of one block of the sequence (round_ > 0: of a verified sequence's redraws)."""
    g = block_generator(seed, block, round_)
    if is_conditional(module):
        labels = block_labels(block, digits)
        return module.latents_for_classes(labels, generator=g), labels
    return prior_draws(module, torch.randn(BLOCK, module.latent_dim, generator=g)), None


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


def verified_chunk(module: nn.Module, classifier: nn.Module, part: torch.Tensor, seed: int, block: int,
                   start: int, end: int, asked: torch.Tensor, digits: tuple[int, ...], *,
                   device: torch.device | str, classifier_device: torch.device | str) -> torch.Tensor:
    """Rows [start, end) of a block, made from round 0's latents (`part`, uint8), with every item the
    classifier disagrees with redrawn from the later rounds (see the module docstring)."""
    part = part.clone()
    verdict, _ = classify_u8(classifier, part, device=classifier_device)
    wrong = verdict != asked
    for round_ in range(1, VERIFY_ROUNDS):
        if not wrong.any():
            break
        latents, _ = block_latents(module, seed, block, digits, round_)
        redrawn = generate_u8(module, latents[start:end][wrong], device=device)
        verdict, _ = classify_u8(classifier, redrawn, device=classifier_device)
        part[wrong] = redrawn
        still = wrong.clone()
        still[wrong] = verdict != asked[wrong]
        wrong = still
    return part


@torch.inference_mode()
def rows(module: nn.Module, seed: int, block: int, lo: int, hi: int, *, digits: tuple[int, ...] = ALL_DIGITS,
         device: torch.device | str = "cpu", classifier: nn.Module | None = None,
         classifier_device: torch.device | str = "cpu", verified: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [lo, hi) of one block of the sequence: uint8 images (hi - lo, 1, 28, 28) and uint8 labels
    (hi - lo,) on the CPU, the classes asked for, or `classifier`'s verdict for a model without classes.
    verified: a class-conditional model's off-class items redrawn until `classifier` agrees (a model
    without classes is labelled by the classifier anyway: the same rows)."""
    latents, asked = block_latents(module, seed, block, digits)
    if (asked is None or verified) and classifier is None:
        raise ValueError("a model without classes, or a verified sequence, needs a classifier")
    images, labels = [], []
    for start, end in chunks(lo, hi, CHUNK):
        part = generate_u8(module, latents[start:end], device=device)
        if asked is None:
            classes, _ = classify_u8(classifier, part, device=classifier_device)
        else:
            classes = asked[start:end]
            if verified:
                part = verified_chunk(module, classifier, part, seed, block, start, end, classes, digits,
                                      device=device, classifier_device=classifier_device)
        keep = slice(max(lo - start, 0), min(hi, end) - start)
        images.append(part[keep])
        labels.append(classes[keep])
    return torch.cat(images), torch.cat(labels).to(torch.uint8)


def make(module: nn.Module, n: int, seed: int, *, offset: int = 0, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Items [offset, offset + n) of the sequence, whole: what GET /dataset streams (kwargs: see rows)."""
    parts = [rows(module, seed, block, lo, hi, **kwargs) for block, lo, hi in blocks(offset, n)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
