"""Hostile connections against the service as `python -m service` runs it (uvicorn with the guarded
protocol, service/protocol.py) and, side by side, the same app under plain uvicorn (what it had before)
and, where it is installed (`pip install granian==2.8.9`; not a dependency), under Granian:

    .venv/bin/python -m benchmarks.hostile [--big 20] [--slow 300] [--observe 45] [--seconds 8]

- oversized headers: `--big` connections each send an unfinished header line of up to 8 MiB; the
  server's resident memory before and while they are open, per connection;
- slow headers: `--slow` connections each send a request line and then one header line every 10 s;
  how long until the server closes each, and how many are still open after `--observe` seconds;
- throughput, interleaved (each server in turn, twice): single-PNG `/sample?model=gan&seed=1`
  with wrk at 16 connections (requests/s and p99) and one `/dataset` npz of 60,000 items (images/s).
Writes benchmarks/results/hostile-<date>.json. Needs wrk for the throughput part (skipped without it).
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import time

import httpx

from benchmarks.common import INSTALL_HINT, rss_mb, server, stream_dataset, wrk, write_result

SERVERS = {
    "guarded": ["-m", "service", "--no-access-log", "--log-level", "error"],
    "plain": ["-m", "uvicorn", "service.main:app", "--no-server-header", "--no-access-log", "--log-level", "error"],
}
if importlib.util.find_spec("granian") is not None:
    SERVERS["granian"] = ["-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--no-access-log",
                          "--log-level", "error", "service.main:app"]
BIG_LINE = 8 * 1024 * 1024
SLOW_INTERVAL_S = 10.0


async def big_headers(port: int, connections: int) -> list:
    """Open `connections` sockets, each pushing an unfinished 8 MiB header line; returns them still open
    (with what each managed to send before the server stopped it)."""
    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            while sent < BIG_LINE:
                writer.write(b"a" * 65536)
                await asyncio.wait_for(writer.drain(), timeout=5)
                sent += 65536
        except (ConnectionError, asyncio.TimeoutError):
            pass
        return reader, writer, sent

    return await asyncio.gather(*(one() for _ in range(connections)))


async def slow_headers(port: int, connections: int, observe_s: float) -> dict:
    """`connections` clients that send a header line every SLOW_INTERVAL_S; when the server closes each."""
    closed_after: list[float] = []
    started = time.monotonic()

    async def one():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            closed_after.append(0.0)
            return
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        deadline = started + observe_s
        line = 0
        try:
            while time.monotonic() < deadline:
                try:  # a read returns when the server answers or closes; else send the next line
                    data = await asyncio.wait_for(reader.read(65536), timeout=min(SLOW_INTERVAL_S,
                                                                                  deadline - time.monotonic()))
                    if not data or b"\r\n\r\n" in data:
                        closed_after.append(time.monotonic() - started)
                        return
                except asyncio.TimeoutError:
                    writer.write(b"X-Line-%d: 1\r\n" % line)
                    line += 1
                    await writer.drain()
        except ConnectionError:
            closed_after.append(time.monotonic() - started)
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return {"connections": connections, "observed_s": observe_s, "closed": len(closed_after),
            "still_open_at_end": connections - len(closed_after),
            "median_close_s": round(sorted(closed_after)[len(closed_after) // 2], 1) if closed_after else None}


def attack(kind: str, big: int, slow: int, observe_s: float) -> dict:
    with server(SERVERS[kind], env={"DIGITGEN_DEVICE": "cpu"}) as (base, proc, _):
        port = int(base.rsplit(":", 1)[1])
        before = rss_mb(proc.pid)

        async def run_big():
            held = await big_headers(port, big)
            during = rss_mb(proc.pid)
            answered = httpx.get(f"{base}/healthz", timeout=30).status_code
            for _, writer, _ in held:
                writer.close()
            return during, answered, [sent for _, _, sent in held]

        during, answered, sent = asyncio.run(run_big())
        slow_result = asyncio.run(slow_headers(port, slow, observe_s))
        return {"rss_before_mb": round(before, 1), "rss_with_big_headers_mb": round(during, 1),
                "mb_per_big_connection": round((during - before) / big, 2),
                "big_connections": big, "median_bytes_sent_per_big_connection": sorted(sent)[len(sent) // 2],
                "healthz_while_attacked": answered, "slow_headers": slow_result}


def throughput(kind: str, seconds: float) -> dict:
    with server(SERVERS[kind], env={"DIGITGEN_DEVICE": "cpu"}) as (base, proc, _):
        single = wrk(f"{base}/sample?model=gan&seed=1", connections=16, seconds=seconds)
        httpx.get(f"{base}/dataset", params={"n": 10_000, "seed": 9, "model": "gan"}, timeout=600)  # warm-up
        seconds_taken, size = stream_dataset(base, n=60_000, seed=1, model="gan")
        return {"sample_png": single, "dataset_npz": {"images": 60_000, "bytes": size,
                                                      "images_per_s": round(60_000 / seconds_taken)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=20, help="connections with an 8 MiB header line (default 20)")
    parser.add_argument("--slow", type=int, default=300, help="slow-header connections (default 300)")
    parser.add_argument("--observe", type=float, default=45, help="seconds the slow clients are watched (default 45)")
    parser.add_argument("--seconds", type=float, default=8, help="wrk seconds per throughput run (default 8)")
    args = parser.parse_args()
    results: dict = {"attack": {}, "throughput": {}}
    for kind in SERVERS:
        results["attack"][kind] = attack(kind, args.big, args.slow, args.observe)
        print(kind, results["attack"][kind], flush=True)
    if shutil.which("wrk") is None:
        print(f"{INSTALL_HINT}: throughput not measured")
    else:
        for round_ in range(2):  # interleaved, so neither server always runs on a warmer machine
            for kind in SERVERS:
                results["throughput"].setdefault(kind, []).append(throughput(kind, args.seconds))
                print(kind, round_, results["throughput"][kind][-1], flush=True)
    print(f"wrote {write_result('hostile', results)}")


if __name__ == "__main__":
    main()
