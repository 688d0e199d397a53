"""Two commits of the service side by side, in one run: is a change neutral for speed?

    apt-get update && apt-get install -y wrk
    .venv/bin/python -m benchmarks.ab --base <commit> [--rounds 3] [--seconds 10]

The base commit is checked out in a git worktree and both services run from the same virtual
environment with the same weights (gan and classifier, which every commit can load), alternating
base and head within each round so that drift of the machine falls on both. Per round and commit:
single-PNG GET /sample?model=gan (random seed, wrk, 16 connections) and GET /dataset npz of 60,000 gan
digits (seed 1, one request, images/s); and, without HTTP or batching, the app's own cost of one
/sample request called in process (best of 5 x 1,000, microseconds). Writes
benchmarks/results/ab-<date>.json and prints a table, and for each measure the median over rounds of
head's speed relative to base's within the round (above 1: head faster) and in how many rounds head was
faster.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


from benchmarks.common import ROOT, server, stream_dataset, wait_idle, write_result, wrk

WEIGHTS = ("gan", "classifier")
FLAGS = ["-m", "service", "--no-access-log", "--log-level", "warning"]


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def worktree(commit: str) -> Path:
    path = Path(tempfile.gettempdir()) / f"digitgen-ab-{commit[:12]}"
    if not path.exists():
        git("worktree", "add", "--detach", str(path), commit)
    return path


def served_from(checkout: Path) -> Path:
    """Where `import service` resolves from in that checkout: the benchmark must run the commit it names."""
    out = subprocess.run([sys.executable, "-c", "import service; print(service.__file__)"], cwd=checkout,
                         env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         check=True).stdout.strip()
    return Path(out).resolve().parent.parent


def dataset_rate(base: str, n: int) -> float:
    seconds, size = stream_dataset(base, model="gan", n=n, seed=1, format="npz")
    assert size > n * 784
    return n / seconds


IN_PROCESS = """
import asyncio, json, logging, sys, time
logging.disable(logging.INFO)
from service.config import Settings
from service.main import create_app
app = create_app(Settings(weights_dir=sys.argv[1], device="cpu"))
SCOPE = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
         "path": "/sample", "raw_path": b"/sample", "query_string": b"model=gan", "root_path": "",
         "headers": [(b"host", b"x"), (b"accept", b"*/*")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
async def main():
    startup, started = asyncio.Queue(), asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get,
                                       started.put))
    assert (await started.get())["type"] == "lifespan.startup.complete"
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        pass
    for _ in range(300):
        await app(dict(SCOPE), receive, send)
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(1000):
            await app(dict(SCOPE), receive, send)
        best = min(best, (time.perf_counter() - began) / 1000)
    print(json.dumps(best * 1e6))
    lifespan.cancel()
asyncio.run(main())
"""


def in_process_us(checkout: Path, weights: Path) -> float:
    out = subprocess.run([sys.executable, "-c", IN_PROCESS, str(weights)], cwd=checkout, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(checkout)}, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(checkout: Path, weights: Path, seconds: float, n: int) -> dict:
    env = {"DIGITGEN_WEIGHTS_DIR": str(weights), "DIGITGEN_DEVICE": "cpu", "PYTHONPATH": str(checkout)}
    with server(FLAGS, env=env, cwd=checkout) as (base, _, _):
        wait_idle(base)
        png = wrk(f"{base}/sample?model=gan", 16, seconds)
        wait_idle(base)
        result = {"sample_png_req_per_s": png["requests_per_s"], "sample_png_p99_ms": png["p99_ms"],
                  "sample_png_errors": png["non_2xx"] + png["socket_errors"],
                  "dataset_npz_images_per_s": dataset_rate(base, n)}
    return result | {"sample_in_process_us": in_process_us(checkout, weights)}


def summary(rounds: list[dict]) -> dict:
    """Per measure, the median over rounds of head's speed relative to base's within a round (drift of the
    machine between rounds falls on both sides of each ratio; above 1: head faster, for a time too), and
    in how many rounds head was faster."""
    out = {}
    for key in ("sample_png_req_per_s", "dataset_npz_images_per_s", "sample_in_process_us"):
        ratios = [r["head"][key] / r["base"][key] for r in rounds]
        if key.endswith("_us"):  # a time: less is faster
            ratios = [1 / x for x in ratios]
        out[key] = {"speed_ratio": round(statistics.median(ratios), 4), "head_faster": sum(x > 1 for x in ratios)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit to compare the working tree's HEAD with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="wrk seconds per single-PNG measurement")
    parser.add_argument("--n", type=int, default=60_000, help="items of the /dataset measurement")
    args = parser.parse_args()
    commits = {"base": git("rev-parse", args.base), "head": git("rev-parse", "HEAD")}
    checkouts = {"base": worktree(commits["base"]), "head": ROOT}
    for label, checkout in checkouts.items():
        if served_from(checkout) != checkout.resolve():
            raise SystemExit(f"{label}: `import service` does not come from {checkout}")
    weights = Path(tempfile.mkdtemp(prefix="digitgen-ab-weights-"))
    for name in WEIGHTS:
        for suffix in (".safetensors", ".json"):
            shutil.copy(ROOT / "models" / "weights" / f"{name}{suffix}", weights)
    rounds = []
    for i in range(args.rounds):
        order = ["base", "head"] if i % 2 == 0 else ["head", "base"]
        row = {label: measure(checkouts[label], weights, args.seconds, args.n) for label in order}
        rounds.append(row)
        for label in ("base", "head"):
            r = row[label]
            print(f"round {i + 1} {label}: {r['sample_png_req_per_s']:8.0f} req/s (p99 {r['sample_png_p99_ms']:.1f} ms)"
                  f"  /dataset npz {r['dataset_npz_images_per_s']:8.0f} images/s  in process "
                  f"{r['sample_in_process_us']:.0f} us", flush=True)
    speeds = summary(rounds)
    path = write_result("ab", {"commits": commits, "seconds_per_run": args.seconds, "dataset_n": args.n,
                               "rounds": rounds, "summary": speeds})
    print("\n| commit | single PNG /sample?model=gan, req/s per round | /dataset npz gan, images/s per round "
          "| one /sample in process, µs per round |")
    print("|---|---|---|---|")
    for label in ("base", "head"):
        png = " · ".join(f"{r[label]['sample_png_req_per_s']:,.0f}" for r in rounds)
        npz = " · ".join(f"{r[label]['dataset_npz_images_per_s']:,.0f}" for r in rounds)
        us = " · ".join(f"{r[label]['sample_in_process_us']:.0f}" for r in rounds)
        print(f"| {label} `{commits[label][:7]}` | {png} | {npz} | {us} |")
    print("\nhead's speed relative to base's, median of the rounds (rounds where head was faster):")
    for key, row in speeds.items():
        print(f"  {key}: {row['speed_ratio']:.3f} ({row['head_faster']}/{len(rounds)})")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
