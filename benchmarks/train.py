"""Training-speed benchmark for the course report's recipe (vae-seed and gan-seed, batch 64).

    .venv/bin/python -m benchmarks.train [--epochs 50] [--device cpu] [--modes sequential concurrent]

sequential: the plain loop: both presets one after the other in one process, torch using every core,
Adam's multi-tensor ("foreach") implementation.
concurrent: the fast configuration: both presets at once, one process each
with one intra-op thread (when one finishes, the other takes a second thread, SIGUSR1, so no core sits
idle while the longer run ends), and the fused Adam step (trainer/common.py).
seed-noise: the concurrent configuration again with seed 1, so the difference between the two
configurations' final losses (same seed 0) can be read against what a different seed alone does.
Each mode reports seconds per epoch and in total, the final losses, and how much those move over the
run's last 10 epochs (end_of_run_spread); "within noise" means the fast configuration's finals are
within twice the plain run's spread.
Needs MNIST in data/mnist (make data). Writes benchmarks/results/train-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import ROOT, write_result

PRESETS = ("vae-seed", "gan-seed")


def run_loop(preset, data, device, max_steps: int | None = None) -> dict:
    """The preset's own training loop, seeded as the trainer seeds it (no t-SNE or other end-of-run
    figures); returns its history. `max_steps` cuts every epoch short (benchmarks/profile_train.py)."""
    import torch

    from models.gan import Discriminator, Generator
    from models.vae import VAE
    from trainer.train_gan import train_gan
    from trainer.train_vae import train_vae

    torch.manual_seed(preset.seed)
    run_dir = Path(tempfile.mkdtemp())
    if preset.family == "vae":
        return train_vae(VAE(preset.vae).to(device), data, preset, device, run_dir, max_steps=max_steps,
                         progress=False)
    _, history = train_gan(Generator(preset.generator).to(device), Discriminator(preset.discriminator).to(device),
                           data, preset, device, run_dir, max_steps=max_steps, progress=False)
    return history


def train_one(preset_name: str, epochs: int, device_spec: str, threads: int, data_dir: str,
              adam_implementation: str, seed: int = 0) -> dict:
    """Train one preset's loop (no t-SNE or other end-of-run figures) and time it."""
    import torch

    from trainer import common
    common.ADAM_IMPLEMENTATION = adam_implementation

    from models.devices import resolve_device
    from trainer.data import load_mnist
    from trainer.presets import get_preset

    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_spec)
    preset = get_preset(preset_name, epochs=epochs, seed=seed)
    data = load_mnist(data_dir).to(device)
    started = time.perf_counter()
    history = run_loop(preset, data, device)
    if preset.family == "vae":
        final = {"train_loss": history["train_loss"][-1], "test_loss": history["test_loss"]}
    else:
        final = history["final"]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"preset": preset_name, "seconds": seconds, "seconds_per_epoch": seconds / epochs, "final": final,
            "end_of_run_spread": end_of_run_spread(history, preset.family),
            "threads_at_end": torch.get_num_threads(), "device": str(device), "adam": adam_implementation}


def end_of_run_spread(history: dict, family: str, epochs: int = 10, block: int = 100) -> dict:
    """How much each final figure moves near the end of one run, as a standard deviation over its last
    `epochs` epochs: the VAE's per-epoch train loss and validation loss (the test loss's yardstick: it is
    measured once), the GAN's losses averaged over blocks of `block` steps (its finals are such averages).
    A configuration whose finals differ from the plain loop's by less than twice this is within noise:
    where exactly a run stops moves the figures that much already."""
    import statistics

    if family == "vae":
        return {"train_loss": statistics.pstdev(history["train_loss"][-epochs:]),
                "test_loss": statistics.pstdev(history["val_loss"][-epochs:])}
    ends = history["epoch_end_step"]
    first = ends[-epochs - 1] if len(ends) > epochs else 0
    spread = {}
    for key in ("d_real", "d_fake", "g"):
        steps = history[key][first:]
        means = [statistics.fmean(steps[i:i + block]) for i in range(0, len(steps) - block + 1, block)]
        spread[key] = statistics.pstdev(means) if len(means) > 1 else 0.0
    return spread


def within_noise(plain: dict, fast: dict, factor: float = 2.0) -> dict:
    """Per preset and figure: |fast - plain| and whether it is within `factor` x the plain run's spread."""
    verdict = {}
    for x, y in zip(plain["runs"], fast["runs"]):
        verdict[x["preset"]] = {
            k: {"difference": abs(x["final"][k] - y["final"][k]), "spread": x["end_of_run_spread"][k],
                "within": abs(x["final"][k] - y["final"][k]) <= factor * x["end_of_run_spread"][k]}
            for k in x["final"]}
    return verdict


def step_flops(preset_name: str) -> float:
    """Floating-point operations of one batch-64 training step (matmuls only, forward + backward),
    counted by torch's FlopCounterMode on the preset's own networks."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models.gan import Discriminator, Generator
    from models.vae import VAE, vae_loss
    from trainer.presets import get_preset
    from trainer.train_gan import discriminator_losses, generator_loss

    preset = get_preset(preset_name)
    x = torch.rand(preset.batch_size, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        if preset.family == "vae":
            logits, mu, logvar = VAE(preset.vae)(x)
            vae_loss(logits, x, mu, logvar).backward()
        else:
            generator, discriminator = Generator(preset.generator), Discriminator(preset.discriminator)
            probabilities = discriminator.config.sigmoid
            fake = generator(torch.randn(preset.batch_size, generator.latent_dim))
            sum(discriminator_losses(preset, discriminator(x), discriminator(fake.detach()), probabilities)).backward()
            discriminator.requires_grad_(False)  # as the loop's generator step (train_gan.py)
            generator_loss(preset, discriminator(fake), probabilities).backward()
    return float(counter.get_total_flops())


def matmul_gflops(m: int, k: int, n: int, threads: int, seconds: float = 1.0) -> float:
    """Sustained float32 GFLOP/s of an (m x k) @ (k x n) product on this CPU."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - started) / 1e9


def compute_bound(results: dict, epochs: int) -> dict:
    """How far the runs are from what the arithmetic alone needs on this machine."""
    from trainer.common import steps_per_epoch

    steps = steps_per_epoch(55_000, 64)
    flops = {p: step_flops(p) for p in PRESETS}
    peak = {f"{t}_threads": {"large_gemm_2048": matmul_gflops(2048, 2048, 2048, t),
                             "recipe_gemm_64x784x300": matmul_gflops(64, 784, 300, t)} for t in (1, 2)}
    total = sum(flops.values()) * steps * epochs
    out = {"flops_per_step": flops, "flops_whole_recipe": total, "gemm_gflops": peak,
           "seconds_at_recipe_gemm_speed_2_threads": total / (peak["2_threads"]["recipe_gemm_64x784x300"] * 1e9),
           "achieved_gflops": {}}
    for mode, r in results.items():
        if isinstance(r, dict) and "runs" in r:
            out["achieved_gflops"][mode] = {run["preset"]: flops[run["preset"]] * steps * epochs / run["seconds"] / 1e9
                                            for run in r["runs"]}
            out["achieved_gflops"][mode]["both"] = total / r["wall_seconds"] / 1e9
    return out


def rebalance(procs: list[subprocess.Popen]) -> list[str]:
    """Waits for every worker; when one finishes, the others may use its core (SIGUSR1: one more
    torch thread), so the longer run does not finish alone on one core. Returns their stdouts."""
    outputs: dict[int, str] = {}

    def collect(i: int) -> None:
        outputs[i] = procs[i].communicate()[0]
        for other in procs:
            if other.poll() is None:
                other.send_signal(signal.SIGUSR1)

    threads = [threading.Thread(target=collect, args=(i,)) for i in range(len(procs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [outputs[i] for i in range(len(procs))]


def run_concurrent(args: argparse.Namespace, seed: int) -> dict:
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.train", "--worker", p, "--threads", "1",
                               "--epochs", str(args.epochs), "--device", args.device, "--data-dir",
                               args.data_dir, "--seed", str(seed), "--adam", args.adam], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for p in PRESETS]
    outputs = rebalance(procs)
    runs = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    return {"wall_seconds": time.perf_counter() - started, "seed": seed, "runs": runs}


def relative_differences(a: dict, b: dict) -> dict:
    return {x["preset"]: {k: abs(x["final"][k] - y["final"][k]) / max(1e-9, abs(x["final"][k])) for k in x["final"]}
            for x, y in zip(a["runs"], b["runs"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default="data/mnist")
    parser.add_argument("--modes", nargs="+", default=["sequential", "concurrent", "seed-noise"],
                        choices=["sequential", "concurrent", "seed-noise"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one preset in a child process
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--adam", default="fused", choices=["fused", "foreach"],
                        help="Adam implementation of the concurrent modes (default fused; foreach = bit-identical "
                             "to the plain loop); a non-default choice writes train-adam-<choice>-<date>.json")
    args = parser.parse_args()
    if args.worker:
        import torch
        # a sibling worker finished: take its core too (see rebalance)
        signal.signal(signal.SIGUSR1, lambda *_: torch.set_num_threads(torch.get_num_threads() + 1))
        print(json.dumps(train_one(args.worker, args.epochs, args.device, args.threads, args.data_dir, args.adam,
                                   args.seed)))
        return

    results = {}
    if "sequential" in args.modes:
        started = time.perf_counter()
        runs = [train_one(p, args.epochs, args.device, 0, args.data_dir, "foreach") for p in PRESETS]
        results["sequential"] = {"wall_seconds": time.perf_counter() - started, "runs": runs}
        print(f"sequential: {results['sequential']['wall_seconds']:.1f} s", flush=True)
    if "concurrent" in args.modes:
        results["concurrent"] = run_concurrent(args, seed=0)
        print(f"concurrent: {results['concurrent']['wall_seconds']:.1f} s", flush=True)
    if "seed-noise" in args.modes:
        results["seed-noise"] = run_concurrent(args, seed=1)
        print(f"seed-noise (concurrent, seed 1): {results['seed-noise']['wall_seconds']:.1f} s", flush=True)

    print("\n| mode | preset | s/epoch | total s | final losses |\n|---|---|---|---|---|")
    for mode, r in results.items():
        for run in r["runs"]:
            losses = ", ".join(f"{k} {v:.3f}" for k, v in run["final"].items())
            print(f"| {mode} | {run['preset']} | {run['seconds_per_epoch']:.2f} | {run['seconds']:.1f} | {losses} |")
        print(f"| {mode} | both, wall clock | | {r['wall_seconds']:.1f} | |")
    if "sequential" in results and "concurrent" in results:
        results["relative_difference_of_final_losses"] = agree = relative_differences(results["sequential"],
                                                                                       results["concurrent"])
        print(f"\nrelative difference of final losses, concurrent vs sequential: {json.dumps(agree)}")
        results["within_noise"] = verdict = within_noise(results["sequential"], results["concurrent"])
        print("concurrent vs sequential, |difference| against 2x the plain run's end-of-run spread:")
        for preset, figures in verdict.items():
            print("  " + preset + ": " + ", ".join(
                f"{k} {v['difference']:.4f} vs 2x{v['spread']:.4f} {'ok' if v['within'] else 'OUTSIDE'}"
                for k, v in figures.items()))
    if "seed-noise" in results and "concurrent" in results:
        results["seed_noise_relative_difference"] = noise = relative_differences(results["concurrent"],
                                                                                 results["seed-noise"])
        print(f"seed noise (seed 1 vs seed 0, same configuration): {json.dumps(noise)}")
    if args.device == "cpu":
        results["compute_bound"] = bound = compute_bound(results, args.epochs)
        print(f"\narithmetic: {bound['flops_whole_recipe'] / 1e12:.2f} TFLOP for the whole recipe; float32 GEMM on "
              f"this CPU: {json.dumps(bound['gemm_gflops'])} GFLOP/s; achieved: "
              f"{json.dumps(bound['achieved_gflops'])} GFLOP/s; the whole recipe at the recipe-shaped GEMM's "
              f"2-thread speed would take {bound['seconds_at_recipe_gemm_speed_2_threads']:.0f} s")
    kind = "train" if args.adam == "fused" else f"train-adam-{args.adam}"
    path = write_result(kind, {"epochs": args.epochs, "device": args.device, "concurrent_adam": args.adam, **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
