"""Rows per forward pass for the bulk path: images/s of each convolutional model's `generate_u8` over
2,048 latents, in chunks of 16 to 2,048 rows, at 1 and 2 intra-op threads (a worker of
`--workers 2` and a lone worker on 2 cores).

    .venv/bin/python -m benchmarks.chunks [--models gan gan-wide fashion-gan] [--rounds 15]

Chunk sizes are timed in interleaved rounds, so a slow spell of the machine bills every size alike;
the figure is the median round. Writes benchmarks/results/chunks-<date>.json, with the share of the
best that the service's chunk (service/inference.py: CPU_CHUNK) gets.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import write_result
from models.checkpoint import load
from models.paths import BUNDLED_WEIGHTS
from models.sampling import generate_u8, latents_for_seed
from service.inference import CPU_CHUNK

CHUNKS = tuple(sorted({16, 32, 64, 128, 256, 512, 2048, CPU_CHUNK}))


def measure(module, threads: int, rounds: int, n: int = 2048) -> dict[int, float]:
    torch.set_num_threads(threads)
    z = latents_for_seed(0, n, module.latent_dim)
    for chunk in CHUNKS:  # warm-up: oneDNN primitives for every shape
        generate_u8(module, z, device="cpu", chunk=chunk)
    seconds: dict[int, list[float]] = {c: [] for c in CHUNKS}
    for _ in range(rounds):
        for chunk in CHUNKS:
            start = time.perf_counter()
            generate_u8(module, z, device="cpu", chunk=chunk)
            seconds[chunk].append(time.perf_counter() - start)
    return {c: round(n / statistics.median(s)) for c, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gan", "gan-wide", "fashion-gan"])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rows = []
    for name in args.models:
        module = load(BUNDLED_WEIGHTS / f"{name}.safetensors").module.eval()
        for threads in (1, 2):
            images_per_s = measure(module, threads, args.rounds)
            best = max(images_per_s, key=images_per_s.get)
            rows.append({"model": name, "threads": threads, "images_per_s": images_per_s, "best_chunk": best,
                         "service_chunk": CPU_CHUNK, "service_share_of_best": round(images_per_s[CPU_CHUNK] / images_per_s[best], 3)})
            print(f"{name:12s} {threads} thread(s): " + "  ".join(f"{c}: {v:,}" for c, v in images_per_s.items())
                  + f"   best {best}; the service's {CPU_CHUNK}: {images_per_s[CPU_CHUNK] / images_per_s[best]:.0%} of best",
                  flush=True)
    path = write_result("chunks", {"rounds": args.rounds, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
