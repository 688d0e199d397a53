"""What `--workers` and the inline budget should be by default: single-PNG `/sample` for each kind of
model at 16 connections, under each configuration, with the CPU the server's processes used.

    apt-get update && apt-get install -y wrk
    .venv/bin/python -m benchmarks.workers [--seconds 8] [--workers 1 2] [--budgets 5 0] [--rounds 2]
    .venv/bin/python -m benchmarks.workers --models gan-npy --connections 1 16 --budgets 5 --name workers-bulk

"cores busy" is the server's process tree's user + system CPU seconds per second of the run (from
/proc): 1.0 is one core fully used. wrk itself runs on one thread, so on a 2-core machine the
server can use at most about one and a half cores while wrk keeps up. Writes
benchmarks/results/<--name, default workers>-<date>.json.
"""
from __future__ import annotations

import argparse
import time

from benchmarks.common import cpu_seconds, server, wait_idle, write_result, wrk

PATHS = {"gan": "/sample?model=gan", "gan-seed": "/sample?model=gan-seed", "vae": "/sample?model=vae",
         # bulk: one request's forward pass gets one worker's share of the cores
         "gan-npy": "/sample?model=gan&n=1024&format=npy"}
IMAGES = {"gan-npy": 1024}


def run(workers: int, budget_ms: float, models: list[str], connections: list[int], seconds: float) -> list[dict]:
    flags = ["-m", "service", "--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    rows = []
    with server(flags, env={"DIGITGEN_INLINE_BUDGET_MS": str(budget_ms)}) as (base, proc, _):
        for model in models:
            url = base + PATHS[model]
            wrk(url, max(connections), 2)  # warm-up
            for c in connections:
                if workers == 1:
                    wait_idle(base)
                before, start = cpu_seconds(proc.pid), time.monotonic()
                result = wrk(url, c, seconds)
                busy = (cpu_seconds(proc.pid) - before) / (time.monotonic() - start)
                images = result["requests_per_s"] * IMAGES.get(model, 1)
                rows.append({"workers": workers, "inline_budget_ms": budget_ms, "model": model, "connections": c,
                             "images_per_s": round(images), "cores_busy": round(busy, 2), **result})
                print(f"workers {workers}  budget {budget_ms:4g} ms  {model:9s} c={c:3d} {result['requests_per_s']:8,.0f} "
                      f"req/s {images:9,.0f} images/s  p99 {result['p99_ms']:7.2f} ms  cores busy {busy:.2f}  errors "
                      f"{result['non_2xx'] + result['socket_errors']}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budgets", type=float, nargs="+", default=[5.0, 0.0])
    parser.add_argument("--models", nargs="+", default=["gan", "gan-seed", "vae"], choices=list(PATHS))
    parser.add_argument("--connections", type=int, nargs="+", default=[16])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--name", default="workers", help="results file: benchmarks/results/<name>-<date>.json")
    args = parser.parse_args()
    rows = []
    for round_ in range(1, args.rounds + 1):
        for workers in args.workers:
            for budget in args.budgets:
                rows += [{**r, "round": round_} for r in run(workers, budget, args.models, args.connections,
                                                             args.seconds)]
    path = write_result(args.name, {"seconds": args.seconds, "rows": rows})
    print("\n| workers | inline budget ms | model | conns | images/s (each round) | p99 ms | cores busy |")
    print("|---|---|---|---|---|---|---|")
    for workers in args.workers:
        for budget in args.budgets:
            for model in args.models:
                for c in args.connections:
                    mine = [r for r in rows
                            if (r["workers"], r["inline_budget_ms"], r["model"], r["connections"]) == (workers, budget,
                                                                                                     model, c)]
                    print(f"| {workers} | {budget:g} | {model} | {c} | "
                          + " / ".join(f"{r['images_per_s']:,}" for r in mine) + " | "
                          + " / ".join(f"{r['p99_ms']:.1f}" for r in mine) + " | "
                          + " / ".join(f"{r['cores_busy']:.2f}" for r in mine) + " |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
