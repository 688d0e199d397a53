"""Peers benchmark: the bundled `gan` served by digitgen, LitServe and BentoML, next to a bare FastAPI
app returning a constant PNG (the ceiling), under the same load generator, in one run.

    apt-get update && apt-get install -y wrk
    .venv/bin/python -m benchmarks.peers [--seconds 10] [--connections 16] [--rounds 2]

Each framework is installed, at the version pinned below, into its own virtualenv under .venv-peers/
(made on first use; their own FastAPI, uvicorn and pydantic pins come first on their sys.path, and
a .pth file lets them import this repository and torch from .venv). Every app serves the same
generator and answers a request with the bytes digitgen's `GET /sample?model=gan&seed=S` gives
(benchmarks/peers/digitgen_gan.py); each server's answers for a few seeds are checked against digitgen's
before it is measured. A request without a seed draws a fresh latent, as digitgen's does.

One server runs at a time (wrk uses one core, the server the other on a 2-core machine); the
targets are measured in turn, and the whole sequence `--rounds` times, so drift of the machine shows
in the spread rather than in one framework's figure. Writes benchmarks/results/peers-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.common import ROOT, server, wait_idle, write_result, wrk

PEERS_DIR = ROOT / ".venv-peers"
PINS = {"litserve": ["litserve==0.2.19"], "bentoml": ["bentoml==1.4.40"]}
CHECKED_SEEDS = (1, 2, 3, 12345)


@dataclass
class Target:
    name: str
    args: list[str]  # after the executable; "--port P" is appended
    path: str  # what wrk requests
    post_json: bool = False  # the peers' APIs are POST with a JSON body
    ready: str = "/readyz"
    peer: str | None = None  # the virtualenv it runs in (None: the project's .venv)
    seeded: str = ""  # URL of one seeded request, "{seed}" replaced (empty: not checked)
    env: dict = field(default_factory=dict)


TARGETS = [
    Target("ceiling: bare FastAPI, constant PNG", ["-m", "uvicorn", "benchmarks.ceiling_app:app", "--no-access-log",
                                                   "--log-level", "warning"], "/sample", ready="/sample"),
    Target("digitgen", ["-m", "service", "--no-access-log", "--log-level", "warning"], "/sample?model=gan",
           seeded="/sample?model=gan&seed={seed}"),
    Target("LitServe 0.2.19", ["benchmarks/peers/litserve_app.py"], "/predict", post_json=True, ready="/health",
           peer="litserve", seeded="/predict"),
    Target("LitServe 0.2.19, batching (16, 2 ms)", ["benchmarks/peers/litserve_app.py", "--max-batch-size", "16",
                                                    "--batch-timeout", "0.002"],
           "/predict", post_json=True, ready="/health", peer="litserve", seeded="/predict"),
    Target("BentoML 1.4.40", ["-m", "bentoml", "serve", "bentoml_service:GanSample", "--working-dir",
                              "benchmarks/peers"], "/sample", post_json=True, peer="bentoml", seeded="/sample", env={"BENTOML_DO_NOT_TRACK": "True"}),
]


def peer_python(peer: str) -> Path:
    """The peer's virtualenv python, made and installed on first use (and again when its pins change)."""
    venv = PEERS_DIR / peer
    python = venv / "bin" / "python"
    stamp = venv / "pins.json"
    if not (python.exists() and stamp.exists() and json.loads(stamp.read_text()) == PINS[peer]):
        print(f"installing {' '.join(PINS[peer])} into {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS[peer]], check=True)
        stamp.write_text(json.dumps(PINS[peer]))
    # after the install, so that pip resolved the framework's own dependencies into its own folder;
    # a .pth line is appended to sys.path, so the peer's packages win over .venv's
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "digitgen-repo.pth").write_text(f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n")
    return python


def check_same_bytes(target: Target, base: str, reference: dict[int, bytes]) -> int:
    """Asks the server for each checked seed; returns how many answers equal digitgen's bytes."""
    same = 0
    for seed, expected in reference.items():
        if target.post_json:
            r = httpx.post(base + target.seeded, json={"seed": seed}, timeout=30)
        else:
            r = httpx.get(base + target.seeded.format(seed=seed), timeout=30)
        same += int(r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == expected)
    return same


def reference_pngs() -> dict[int, bytes]:
    """digitgen's own answers for the checked seeds (the in-process app, the real route)."""
    from fastapi.testclient import TestClient

    from service.main import app
    with TestClient(app) as client:
        return {seed: client.get(f"/sample?model=gan&seed={seed}").content for seed in CHECKED_SEEDS}


def lua_post_json(body: str) -> Path:
    script = Path(tempfile.mkdtemp()) / "post_json.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{body}\'\n')
    return script


def measure(target: Target, connections: list[int], seconds: float, reference: dict[int, bytes],
            logs: Path) -> list[dict]:
    executable = str(peer_python(target.peer)) if target.peer else None
    log = logs / f"{target.name.split(',')[0].replace(' ', '-')}.log"
    script = lua_post_json("{}") if target.post_json else None
    rows = []
    with server(target.args, ready_path=target.ready, executable=executable, env=target.env, log=log,
                deadline_s=180) as (base, _, startup_s):
        same = check_same_bytes(target, base, reference) if target.seeded else None
        wrk(base + target.path, max(connections), 2, script=script)  # warm-up
        for c in connections:
            if target.name == "digitgen":
                wait_idle(base)
            result = wrk(base + target.path, c, seconds, script=script)
            rows.append({"target": target.name, "connections": c, "startup_s": round(startup_s, 2),
                         "same_bytes_as_digitgen": None if same is None else f"{same}/{len(reference)}", **result})
            print(f"{target.name:40s} c={c:3d} {result['requests_per_s']:9,.0f} req/s  p50 {result['p50_ms']:6.2f} ms"
                  f"  p99 {result['p99_ms']:6.2f} ms  errors {result['non_2xx'] + result['socket_errors']}"
                  + ("" if same is None else f"  same bytes {same}/{len(reference)}"), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[16])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="+", help="measure only the targets whose names start with these")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per checked seed otherwise
    targets = [t for t in TARGETS if not args.only or any(t.name.startswith(o) for o in args.only)]
    for peer in {t.peer for t in targets if t.peer}:
        peer_python(peer)  # installs before anything is timed
    reference = reference_pngs()
    logs = Path(tempfile.mkdtemp(prefix="peers-"))
    rows = []
    for round_ in range(1, args.rounds + 1):
        for target in targets:
            rows += [{**row, "round": round_} for row in measure(target, args.connections, args.seconds, reference,
                                                               logs)]
    ceiling = {(r["round"], r["connections"]): r["requests_per_s"] for r in rows if r["target"].startswith("ceiling")}
    for row in rows:
        if (row["round"], row["connections"]) in ceiling:
            row["ratio_to_ceiling"] = round(row["requests_per_s"] / ceiling[row["round"], row["connections"]], 3)
    path = write_result("peers", {"seconds": args.seconds, "pins": PINS, "checked_seeds": list(CHECKED_SEEDS),
                                  "rows": rows})
    print("\n| server | conns | req/s (each round) | p99 ms | × ceiling | same bytes |")
    print("|---|---|---|---|---|---|")
    for target in targets:
        for c in args.connections:
            mine = [r for r in rows if r["target"] == target.name and r["connections"] == c]
            rates = " / ".join(f"{r['requests_per_s']:,.0f}" for r in mine)
            p99 = " / ".join(f"{r['p99_ms']:.1f}" for r in mine)
            ratio = " / ".join(f"{r.get('ratio_to_ceiling', 0):.2f}" for r in mine)
            print(f"| {target.name} | {c} | {rates} | {p99} | {ratio} | {mine[0]['same_bytes_as_digitgen'] or ''} |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
