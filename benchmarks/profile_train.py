"""Where a training step of the report's recipe goes, op by op (torch.profiler), on one CPU thread.

    .venv/bin/python -m benchmarks.profile_train [--steps 600] [--adam foreach fused]

For each preset (vae-seed, gan-seed) and Adam implementation: milliseconds per step (best of three
timings without the profiler) and each category's share of the profiled CPU time: matrix products, the Adam step,
zero_grad, the batch's indexing, and the rest (elementwise forward/backward, losses, autograd).
The training loops end each epoch with validation and figures, so every figure is the difference
between a run of --steps + 100 steps and one of 100: what the extra steps alone cost.
One thread, as each preset runs in the fast concurrent configuration (benchmarks/train.py).
Needs MNIST in data/mnist (make data). Writes benchmarks/results/profile-train-<date>.json.
"""
from __future__ import annotations

import argparse
import math
import time
from collections import Counter

from benchmarks.common import write_result
from benchmarks.train import run_loop

MATMULS = {"aten::mm", "aten::addmm", "aten::bmm"}


def category(event) -> str:
    parent = event
    while parent is not None:
        if parent.name.startswith("Optimizer.step"):
            return "Adam step"
        if parent.name.startswith("Optimizer.zero_grad"):
            return "zero_grad"
        parent = parent.cpu_parent
    if event.name in MATMULS:
        return "matrix products (mm, addmm)"
    if event.name == "aten::index":
        return "batch indexing"
    return "elementwise, losses, autograd (rest)"


def run_steps(preset_name: str, steps: int, data, adam_implementation: str) -> None:
    import torch

    from trainer import common
    from trainer.presets import get_preset

    common.ADAM_IMPLEMENTATION = adam_implementation
    run_loop(get_preset(preset_name, epochs=1), data, torch.device("cpu"), max_steps=steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--adam", nargs="+", default=["foreach", "fused"], choices=["foreach", "fused"])
    parser.add_argument("--data-dir", default="data/mnist")
    args = parser.parse_args()

    import torch

    from trainer.data import load_mnist

    torch.set_num_threads(1)
    data = load_mnist(args.data_dir)
    results = []
    base = 100  # steps both runs share; their end-of-epoch work cancels in the difference
    for preset_name in ("vae-seed", "gan-seed"):
        for adam_implementation in args.adam:
            run_steps(preset_name, 20, data, adam_implementation)  # warm-up
            seconds, totals = {}, {}
            for steps in (base, base + args.steps):
                seconds[steps] = math.inf
                for _ in range(3):  # the best of three: this shared machine's own noise is ~10 %
                    started = time.perf_counter()
                    run_steps(preset_name, steps, data, adam_implementation)
                    seconds[steps] = min(seconds[steps], time.perf_counter() - started)
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    run_steps(preset_name, steps, data, adam_implementation)
                totals[steps] = Counter()
                for event in prof.events():
                    totals[steps][category(event)] += event.self_cpu_time_total
            ms_per_step = (seconds[base + args.steps] - seconds[base]) / args.steps * 1e3
            extra = {k: max(0.0, totals[base + args.steps][k] - totals[base][k]) for k in totals[base + args.steps]}
            share = {k: v / sum(extra.values()) for k, v in sorted(extra.items(), key=lambda kv: -kv[1])}
            results.append({"preset": preset_name, "adam": adam_implementation, "steps": args.steps,
                            "ms_per_step": ms_per_step, "share": share})
            print(f"{preset_name} adam={adam_implementation}: {ms_per_step:.2f} ms/step; "
                  + ", ".join(f"{k} {100 * v:.1f} %" for k, v in share.items()), flush=True)
    path = write_result("profile-train", {"threads": 1, "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
