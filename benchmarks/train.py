"""Training-speed benchmark for the course report's recipe (vae-seed and gan-seed, batch 64).

    .venv/bin/python -m benchmarks.train [--epochs 50] [--device cpu] [--modes sequential concurrent]

sequential: both presets one after the other in one process, torch using every core (the plain loop).
concurrent: both presets at once, one process each with one intra-op thread: these batch-64 MLP steps
are too small for two threads to help, so two processes use the two cores better.
Each mode reports seconds per epoch and in total, and the final losses, which must agree across
modes within noise (same seeds, same code; only float summation order may differ).
Needs MNIST in data/mnist (make data). Writes benchmarks/results/train-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, write_result

PRESETS = ("vae-seed", "gan-seed")


def train_one(preset_name: str, epochs: int, device_spec: str, threads: int, data_dir: str) -> dict:
    """Train one preset's loop (no t-SNE or other end-of-run figures) and time it."""
    import torch

    from models.devices import resolve_device
    from models.gan import Discriminator, Generator
    from models.vae import VAE
    from trainer.data import load_mnist
    from trainer.presets import get_preset
    from trainer.train_gan import train_gan
    from trainer.train_vae import train_vae

    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_spec)
    preset = get_preset(preset_name, epochs=epochs)
    data = load_mnist(data_dir).to(device)
    torch.manual_seed(preset.seed)
    run_dir = Path(tempfile.mkdtemp())
    started = time.perf_counter()
    if preset.family == "vae":
        history = train_vae(VAE(preset.vae).to(device), data, preset, device, run_dir, progress=False)
        final = {"train_loss": history["train_loss"][-1], "test_loss": history["test_loss"]}
    else:
        _, history = train_gan(Generator(preset.generator).to(device), Discriminator(preset.discriminator).to(device),
                               data, preset, device, run_dir, progress=False)
        final = history["final"]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"preset": preset_name, "seconds": seconds, "seconds_per_epoch": seconds / epochs, "final": final,
            "threads": torch.get_num_threads(), "device": str(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default="data/mnist")
    parser.add_argument("--modes", nargs="+", default=["sequential", "concurrent"],
                        choices=["sequential", "concurrent"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one preset in a child process
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(train_one(args.worker, args.epochs, args.device, args.threads, args.data_dir)))
        return

    results = {}
    if "sequential" in args.modes:
        started = time.perf_counter()
        runs = [train_one(p, args.epochs, args.device, 0, args.data_dir) for p in PRESETS]
        results["sequential"] = {"wall_seconds": time.perf_counter() - started, "runs": runs}
        print(f"sequential: {results['sequential']['wall_seconds']:.1f} s", flush=True)
    if "concurrent" in args.modes:
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.train", "--worker", p, "--threads", "1",
                                   "--epochs", str(args.epochs), "--device", args.device, "--data-dir",
                                   args.data_dir], cwd=ROOT, stdout=subprocess.PIPE, text=True) for p in PRESETS]
        runs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        results["concurrent"] = {"wall_seconds": time.perf_counter() - started, "runs": runs}
        print(f"concurrent: {results['concurrent']['wall_seconds']:.1f} s", flush=True)

    print("\n| mode | preset | s/epoch | total s | final losses |\n|---|---|---|---|---|")
    for mode, r in results.items():
        for run in r["runs"]:
            losses = ", ".join(f"{k} {v:.3f}" for k, v in run["final"].items())
            print(f"| {mode} | {run['preset']} | {run['seconds_per_epoch']:.2f} | {run['seconds']:.1f} | {losses} |")
        print(f"| {mode} | both, wall clock | | {r['wall_seconds']:.1f} | |")
    if len(results) == 2:
        agree = {}
        for a, b in zip(results["sequential"]["runs"], results["concurrent"]["runs"]):
            agree[a["preset"]] = {k: abs(a["final"][k] - b["final"][k]) / max(1e-9, abs(a["final"][k]))
                                  for k in a["final"]}
        results["relative_difference_of_final_losses"] = agree
        print(f"\nrelative difference of final losses, concurrent vs sequential: {json.dumps(agree)}")
    path = write_result("train", {"epochs": args.epochs, "device": args.device, **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
