"""Scale-out without Docker: two uvicorn replicas behind Debian's nginx on loopback.

    apt-get update && apt-get install -y nginx-light
    .venv/bin/python -m benchmarks.scaleout [--requests 600]

Sends seeded /sample requests through nginx from a few client threads, kills one replica
(SIGKILL, as a crash would) a third of the way in, and checks that every request still succeeds
(nginx retries the next upstream) and that each seed's PNG is byte-identical to what a replica
returns directly, whichever replica answered. Writes benchmarks/results/scaleout-<date>.json.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import signal
import time
from collections import Counter

import httpx

from benchmarks.common import nginx, server, write_result

UPSTREAMS = """
    upstream digitgen {{
        server 127.0.0.1:{a} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:{b} max_fails=1 fail_timeout=30s;
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{
            proxy_pass http://digitgen;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 1s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    flags = ["-m", "service", "--no-access-log", "--log-level", "warning"]
    with server(flags) as (base_a, proc_a, _), server(flags) as (base_b, proc_b, _), \
            nginx(UPSTREAMS.format(a=base_a.rsplit(":", 1)[1], b=base_b.rsplit(":", 1)[1])) as front:
        direct = {seed: httpx.get(f"{base_b}/sample", params={"model": "gan", "seed": seed}).content
                  for seed in range(50)}
        kill_at = args.requests // 3
        statuses, upstreams, mismatches = Counter(), Counter(), 0
        killed_at = None
        started = time.monotonic()

        def one(i: int):
            seed = i % 50
            r = httpx.get(f"{front}/sample", params={"model": "gan", "seed": seed}, timeout=10)
            return i, r.status_code, r.headers.get("x-upstream", "?"), r.content == direct[seed]

        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            first = list(pool.map(one, range(kill_at)))
            proc_a.send_signal(signal.SIGKILL)  # a crash, not a drain: nginx must retry elsewhere
            proc_a.wait()
            killed_at = time.monotonic() - started
            rest = list(pool.map(one, range(kill_at, args.requests)))
        for i, status, upstream, same in first + rest:
            statuses[status] += 1
            upstreams[upstream] += 1
            mismatches += 0 if same else 1
        elapsed = time.monotonic() - started
    ok = statuses.get(200, 0) == args.requests and mismatches == 0
    path = write_result("scaleout", {"requests": args.requests, "threads": args.threads,
                                     "replica_killed_after_request": kill_at, "killed_at_s": killed_at,
                                     "elapsed_s": elapsed, "statuses": dict(statuses),
                                     "answered_by": dict(upstreams), "seed_mismatches": mismatches, "passed": ok})
    print(f"{args.requests} requests through nginx in {elapsed:.1f} s; replica A killed after {kill_at}")
    print(f"statuses {dict(statuses)}; answered by {dict(upstreams)}; seeded PNG mismatches {mismatches}")
    print(f"{'PASS' if ok else 'FAIL'}; wrote {path}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
