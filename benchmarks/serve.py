"""Serving benchmark: the real service vs a bare FastAPI ceiling, same uvicorn, same load generator.

    apt-get update && apt-get install -y wrk      # the load generator
    .venv/bin/python -m benchmarks.serve [--seconds 10] [--connections 1 16 64] [--workers 2] [--only gan]

Writes benchmarks/results/serve-<date>.json (serve-w<N>-<date>.json with --workers N > 1) and prints a
table. wrk runs with one thread, so on a 2-core machine it shares the cores with the server. With
--workers N the ceiling app runs N uvicorn workers too, so each ratio compares like with like; --only
keeps the scenarios whose name contains the text (the ceiling always runs).
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from benchmarks.common import lua_string, server, wait_idle, write_result, wrk

SCENARIOS = [
    ("ceiling: constant PNG", "ceiling", "/sample", None, 1),
    ("sample gan, 1 PNG, random seed", "service", "/sample?model=gan", None, 1),
    # the same request through the FastAPI route (DIGITGEN_FAST_PATH=false): what the lean path saves
    ("sample gan, 1 PNG, FastAPI route", "route", "/sample?model=gan", None, 1),
    ("sample gan, n=64 grid PNG", "service", "/sample?model=gan&n=64", None, 64),
    ("sample gan, n=1024 npy", "service", "/sample?model=gan&n=1024&format=npy", None, 1024),
    # the 128-channel DCGAN that gan is distilled from, for the same requests in the same run
    ("sample gan-wide, 1 PNG, random seed", "service", "/sample?model=gan-wide", None, 1),
    ("sample gan-wide, n=1024 npy", "service", "/sample?model=gan-wide&n=1024&format=npy", None, 1024),
    # the report's MLP generator: ~30x fewer FLOPs per image than the DCGAN, so these rows show
    # the serving stack's own overhead rather than the model's arithmetic
    ("sample gan-seed (MLP), 1 PNG", "service", "/sample?model=gan-seed", None, 1),
    ("sample gan-seed (MLP), 1 PNG, FastAPI route", "route", "/sample?model=gan-seed", None, 1),
    ("sample gan-seed (MLP), n=1024 npy", "service", "/sample?model=gan-seed&n=1024&format=npy", None, 1024),
    ("reconstruct vae, 28x28 PNG upload", "service", "/reconstruct?model=vae", "reconstruct", 1),
]


def lua_post_png(png: bytes) -> Path:
    """A wrk script that POSTs `png` as a raw image/png body."""
    body = lua_string(png)
    script = Path(tempfile.mkdtemp()) / "post_png.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "image/png"\nwrk.body = "{body}"\n')
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--device", default=os.environ.get("DIGITGEN_DEVICE", "cpu"))
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the service and the ceiling app")
    parser.add_argument("--only", help="run only the scenarios whose name contains this text (and the ceiling)")
    args = parser.parse_args()

    import httpx
    flags = ["--no-access-log", "--log-level", "warning", "--workers", str(args.workers)]
    scenarios = [s for s in SCENARIOS if s[1] == "ceiling" or not args.only or args.only in s[0]]
    results = []
    with server(["-m", "uvicorn", "benchmarks.ceiling_app:app", *flags], ready_path="/sample") as (ceiling_base, _, _), \
            server(["-m", "service", *flags], env={"DIGITGEN_DEVICE": args.device}) as (service_base, _, startup_s), \
            server(["-m", "service", *flags], env={"DIGITGEN_DEVICE": args.device, "DIGITGEN_FAST_PATH": "false"}) \
            as (route_base, _, _):
        upload = httpx.get(f"{service_base}/sample?model=vae&seed=1").content
        scripts = {"reconstruct": lua_post_png(upload)}
        for name, target, path, script, images in scenarios:
            base = {"ceiling": ceiling_base, "service": service_base, "route": route_base}[target]
            for c in args.connections:
                for busy in (service_base, route_base):
                    wait_idle(busy)
                r = wrk(base + path, c, args.seconds, script=scripts.get(script) if script else None)
                r.update({"scenario": name, "connections": c, "images_per_s": r["requests_per_s"] * images})
                results.append(r)
                print(f"{name:38s} c={c:3d}  {r['requests_per_s']:9.0f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                      f"p99 {r['p99_ms']:7.2f} ms  errors {r['non_2xx'] + r['socket_errors']}", flush=True)
    ceiling = {r["connections"]: r["requests_per_s"] for r in results if r["scenario"].startswith("ceiling")}
    for r in results:
        r["ratio_to_ceiling"] = r["requests_per_s"] / ceiling[r["connections"]]
    kind = "serve" if args.workers == 1 else f"serve-w{args.workers}"
    path = write_result(kind, {"device": args.device, "workers": args.workers, "seconds_per_run": args.seconds,
                                  "service_start_to_ready_s": startup_s, "results": results})
    print()
    print("| scenario | conns | req/s | images/s | p50 ms | p99 ms | × ceiling |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['scenario']} | {r['connections']} | {r['requests_per_s']:.0f} | {r['images_per_s']:.0f} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['ratio_to_ceiling']:.2f} |")
    print(f"\nservice start to /readyz 200: {startup_s:.2f} s\nwrote {path}")


if __name__ == "__main__":
    main()
