"""Soak: 60 s of mixed traffic at 64 connections against the real service on loopback.

    apt-get update && apt-get install -y wrk
    .venv/bin/python -m benchmarks.soak [--seconds 60] [--connections 64] [--warmup 10]

Pass criteria (printed, and written to benchmarks/results/soak-<date>.json): zero errors (non-2xx and
socket errors) and resident memory growth under 10 % between the end of warm-up and the end.
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.common import lua_string, rss_mb, server, write_result, wrk

# wrk cycles through these requests; bodies are filled in by make_script
MIX = """
local png = "{png}"
local z = "[" .. string.rep("0.1,", 15) .. "0.1]"
local requests = {{
  wrk.format("GET", "/sample?model=gan"),
  wrk.format("GET", "/sample?model=gan&n=16&nrow=4&scale=2"),
  wrk.format("GET", "/sample?model=vae&n=4&format=json"),
  wrk.format("GET", "/sample?model=gan&n=256&format=npy"),
  wrk.format("GET", "/sample?model=gan&digit=5&n=2"),
  wrk.format("POST", "/reconstruct?model=vae&side_by_side=true", {{["Content-Type"] = "image/png"}}, png),
  wrk.format("POST", "/encode?model=vae", {{["Content-Type"] = "image/png"}}, png),
  wrk.format("GET", "/interpolate?model=vae&steps=8"),
  wrk.format("POST", "/decode", {{["Content-Type"] = "application/json"}}, '{{"model":"gan","latents":[' .. z .. ']}}'),
  wrk.format("GET", "/models"),
}}
local i = 0
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""


def make_script(png: bytes) -> Path:
    body = lua_string(png)
    path = Path(tempfile.mkdtemp()) / "mix.lua"
    path.write_text(MIX.format(png=body))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    with server(["-m", "service", "--no-access-log", "--log-level", "warning"]) as (base, proc, _):
        script = make_script(httpx.get(f"{base}/sample?model=vae&seed=3").content)
        wrk(base, args.connections, args.warmup, script=script)  # warm-up: allocator pools, caches
        rss = [(0.0, rss_mb(proc.pid))]
        stop = threading.Event()
        start = time.monotonic()

        def sample_rss():
            while not stop.wait(2.0):
                rss.append((round(time.monotonic() - start, 1), rss_mb(proc.pid)))

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        result = wrk(base, args.connections, args.seconds, script=script)
        stop.set()
        sampler.join()
        rss.append((round(time.monotonic() - start, 1), rss_mb(proc.pid)))
        alive = httpx.get(f"{base}/healthz").status_code == 200
    growth = (rss[-1][1] - rss[0][1]) / rss[0][1]
    errors = result["non_2xx"] + result["socket_errors"]
    passed = errors == 0 and growth < 0.10 and alive
    path = write_result("soak", {"seconds": args.seconds, "warmup_s": args.warmup, "connections": args.connections,
                                 "wrk": result, "errors": errors, "rss_mb": rss, "rss_growth": growth,
                                 "alive_after": alive, "passed": passed})
    print(f"{result['requests']} requests in {args.seconds:.0f} s ({result['requests_per_s']:.0f} req/s), "
          f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, errors {errors}")
    print(f"RSS {rss[0][1]:.0f} MiB after warm-up -> {rss[-1][1]:.0f} MiB at the end ({100 * growth:+.1f} %)")
    print(f"{'PASS' if passed else 'FAIL'}; wrote {path}")
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
