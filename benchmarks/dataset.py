"""Labelled synthetic data for other services, end to end through digitgen_client.

    .venv/bin/python -m benchmarks.dataset [--n 60000] [--stream-n 1000000] [--cache-seconds 8]

In one run, against one service on loopback (bundled weights):
- `n` labelled digits of `--model` (default: /dataset's default model) through the client: npz
  (`Client.dataset`), npz with verified labels (`verified=True`: every item confirmed by the
  classifier, off-class ones drawn again) and tar (the CLI's `fetch`), and the same npz and tar as
  the server streams them (one request each, read and dropped), after a warm-up, in two rounds
  alternating with the unlabelled path (each method's best round kept);
- the way it was done before /dataset: ten `/sample?digit=d&format=npy` requests of n/10 each
  (rejection sampling keeps only samples the classifier is sure of);
- the unlabelled bulk path for reference: `/sample?format=npy` in pages of the same size;
- the server's resident memory while one `/dataset` answer of `stream-n` images streams (sampled
  every 50 ms from /proc), against its memory before;
- with nginx on the PATH (apt-get install nginx-light): a repeated-seed workload (wrk, 16
  connections, one seeded 8x8 grid) straight to the service and through nginx's proxy cache,
  which stores the seeded answers (Cache-Control: public, immutable) and serves repeats itself.
Writes benchmarks/results/dataset-<date>.json. `--stream-n 0` skips the memory run, `--cache-seconds 0`
the proxy cache.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.common import NGINX_HINT, nginx, rss_mb, server, stream_dataset, wrk, write_result
from digitgen_client import Client
from digitgen_client.cli import fetch
from models.synthetic import DEFAULT_MODEL

PAGE = 10_000
ROUNDS = 2


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def row(n: int, seconds: float, **extra) -> dict:
    return {"images": n, "seconds": round(seconds, 2), "images_per_s": round(n / seconds), **extra}


def via_client(base: str, n: int, model: str, out_dir: Path) -> dict:
    with Client(base) as client:
        seconds, _ = timed(lambda: client.dataset(n, model, seed=1, batch=PAGE))
        rows = {"dataset_npz": row(n, seconds, labels="as /dataset labels them")}
        seconds, _ = timed(lambda: client.dataset(n, model, seed=1, batch=PAGE, verified=True))
        rows["dataset_npz_verified"] = row(n, seconds, labels="confirmed by the classifier")
        seconds, _ = timed(lambda: fetch(client, out_dir / "synth.tar", n, model, 1, None, 0, "tar", PAGE, quiet=True))
        rows["dataset_tar_cli"] = row(n, seconds, bytes=(out_dir / "synth.tar").stat().st_size)
    for fmt in ("npz", "tar"):  # the server alone: one request, its body read and dropped
        seconds, size = stream_dataset(base, model=model, n=n, seed=2, format=fmt)
        rows[f"server_stream_{fmt}"] = row(n, seconds, bytes=size)
    return rows


def warm_up(base: str, model: str) -> None:
    """One full page of each kind first: the first large requests of a fresh process pay for lazy
    initialisation and memory growth, which would bill whichever method ran first."""
    with Client(base) as client:
        client.dataset(PAGE, model, seed=99)
        client.fetch_page(PAGE, model, seed=99, format="tar")
    with httpx.Client(base_url=base, timeout=600) as http:
        http.get("/sample", params={"model": model, "n": PAGE, "seed": 99, "format": "npy"}).raise_for_status()


def digit_requests(base: str, n: int, model: str) -> dict:
    per = n // 10

    def run():
        with httpx.Client(base_url=base, timeout=600) as http:
            for digit in range(10):
                http.get("/sample", params={"model": model, "n": per, "digit": digit, "seed": digit,
                                            "format": "npy"}).raise_for_status()

    seconds, _ = timed(run)
    return row(per * 10, seconds, labels="the digit asked for, kept only at classifier confidence >= 0.999")


def npy_pages(base: str, n: int, model: str) -> dict:
    def run():
        with httpx.Client(base_url=base, timeout=600) as http:
            for seed in range(n // PAGE):
                http.get("/sample", params={"model": model, "n": PAGE, "seed": seed,
                                            "format": "npy"}).raise_for_status()

    seconds, _ = timed(run)
    return row(n // PAGE * PAGE, seconds, labels="none")


def stream_memory(base: str, pid: int, n: int, model: str) -> dict:
    before = rss_mb(pid)
    peak, done = [before], threading.Event()

    def watch():
        while not done.is_set():
            peak.append(rss_mb(pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    received = 0
    start = time.perf_counter()
    try:
        with httpx.stream("GET", f"{base}/dataset", params={"model": model, "n": n, "seed": 3}, timeout=3600) as r:
            r.raise_for_status()
            for chunk in r.iter_raw():
                received += len(chunk)
    finally:
        done.set()
        watcher.join()
    seconds = time.perf_counter() - start
    return {"model": model, "images": n, "bytes": received, "seconds": round(seconds, 1),
            "images_per_s": round(n / seconds), "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(max(peak), 1), "rss_growth_mb": round(max(peak) - before, 1)}


PROXY_CACHE = """
    proxy_cache_path {{prefix}}/cache levels=1:2 keys_zone=digitgen:10m max_size=1g inactive=1d;
    upstream digitgen {{ server 127.0.0.1:{upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{
            proxy_pass http://digitgen;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache digitgen;          # stores what the service marks public (seeded answers)
            proxy_cache_lock on;           # one request fills an entry, concurrent ones wait for it
            add_header X-Cache $upstream_cache_status always;
        }}
    }}
"""


def proxy_cache(base: str, seconds: float) -> dict | None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        print(f"{NGINX_HINT}: proxy cache not measured")
        return None
    path = "/sample?n=64&seed=42&scale=1"
    direct = wrk(base + path, connections=16, seconds=seconds)
    with nginx(PROXY_CACHE.format(upstream=base.rsplit(":", 1)[1])) as proxy:
        first, second = httpx.get(proxy + path, timeout=30), httpx.get(proxy + path, timeout=30)
        cached = wrk(proxy + path, connections=16, seconds=seconds)
        unseeded = httpx.get(proxy + "/sample?n=64", timeout=30).headers.get("x-cache")
    return {"url": path, "direct": direct, "through_nginx_cache": cached,
            "x_cache_first": first.headers.get("x-cache"), "x_cache_second": second.headers.get("x-cache"),
            "x_cache_unseeded": unseeded, "same_bytes": first.content == second.content,
            "speedup": round(cached["requests_per_s"] / direct["requests_per_s"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60_000, help="labelled images per method (default 60000)")
    parser.add_argument("--stream-n", type=int, default=1_000_000, help="images in the memory run (default 1e6)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the labelled sets' model (default {DEFAULT_MODEL})")
    parser.add_argument("--stream-model", default="gan", help="model of the memory run (default gan)")
    parser.add_argument("--cache-seconds", type=float, default=8, help="wrk seconds per cache run (default 8)")
    args = parser.parse_args()
    env = {"DIGITGEN_DEVICE": "cpu", "DIGITGEN_MAX_SAMPLES": str(max(PAGE, args.n // 10))}
    with server(["-m", "service", "--no-access-log"], env=env) as (base, proc, _), \
            tempfile.TemporaryDirectory() as scratch:
        results = {"n": args.n, "page": PAGE, "model": args.model, "rounds": ROUNDS}
        warm_up(base, args.model)
        rounds = []
        for _ in range(ROUNDS):  # alternating, so neither method always runs on a warmer process
            measured = via_client(base, args.n, args.model, Path(scratch))
            measured["unlabelled_npy_pages"] = npy_pages(base, args.n, args.model)
            rounds.append(measured)
            print(measured)
        for key in rounds[0]:  # each method's best round
            results[key] = max((r[key] for r in rounds), key=lambda r: r["images_per_s"])
        for key in ("dataset_npz", "dataset_npz_verified"):
            results[f"ratio_{key}_to_npy"] = round(results[key]["images_per_s"]
                                                   / results["unlabelled_npy_pages"]["images_per_s"], 2)
        for tar, npz in (("dataset_tar_cli", "dataset_npz"), ("server_stream_tar", "server_stream_npz")):
            results[f"ratio_{tar}_to_npz"] = round(results[tar]["images_per_s"] / results[npz]["images_per_s"], 2)
        results["digit_requests_npy"] = digit_requests(base, args.n, args.model)
        print({k: v for k, v in results.items() if k.startswith(("digit_requests", "ratio"))})
        if args.stream_n > 0:
            results["stream_memory"] = stream_memory(base, proc.pid, args.stream_n, args.stream_model)
            print(results["stream_memory"])
        if args.cache_seconds > 0:
            results["proxy_cache"] = proxy_cache(base, args.cache_seconds)
            print(results["proxy_cache"])
    print(f"wrote {write_result('dataset', results)}")


if __name__ == "__main__":
    main()
