"""Where the time of GET /sample goes: py-spy samples the real service under wrk load, and each
sampled stack is charged to the deepest frame that falls in one of a few categories.

    apt-get install -y wrk && .venv/bin/pip install py-spy==0.4.1
    .venv/bin/python -m benchmarks.profile_serve [--path '/sample?model=gan'] [--connections 16] [--seconds 10]

Writes benchmarks/results/profile-<date>.json and prints the breakdown (share of samples, all threads).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from benchmarks.common import server, write_result, wrk

# (category, substrings of a frame "function (path:line)"), most specific first in the stack walk
CATEGORIES = [
    ("model forward (torch)", ("generate (models/", "forward (models/", "forward (torch/", "_conv_forward")),
    ("uint8 conversion", ("to_uint8",)),
    ("PNG encoding", ("encode_png", "images_png")),
    ("latents from seed", ("latents_for_seed",)),
    ("batcher (queue, cat, row slices, thread hand-off)", ("service/batching.py", "concurrent/futures", "threading.py")),
    ("metrics (prometheus-client)", ("service/metrics.py", "prometheus_client")),
    ("lean /sample path (query parsing, headers)", ("service/routes/sample.py",)),
    ("route handler", ("service/routes/", "service/deps.py")),
    ("FastAPI: routing, validation, dependencies", ("fastapi/",)),
    ("Starlette: middleware, responses", ("starlette/",)),
    ("uvicorn HTTP protocol (httptools)", ("uvicorn/",)),
]


def categorise(stack: list[str]) -> str:
    for frame in reversed(stack):  # leaf first
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "event loop and other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="/sample?model=gan")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy")
    out = Path(tempfile.mkdtemp()) / "stacks.txt"
    with server(["-m", "service", "--no-access-log", "--log-level", "warning"]) as (base, proc, _):
        wrk(base + args.path, args.connections, 2)  # warm-up
        load = threading.Thread(target=wrk, args=(base + args.path, args.connections, args.seconds + 2))
        load.start()
        subprocess.run([py_spy, "record", "--pid", str(proc.pid), "--duration", str(args.seconds), "--rate", "500",
                        "--format", "raw", "--output", str(out), "--nonblocking"], check=True,
                       capture_output=True)
        load.join()
    counts: Counter = Counter()
    for line in out.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():  # a frame name that itself held a line break
            continue
        counts[categorise(stack.split(";"))] += int(n)
    total = sum(counts.values())
    breakdown = {name: counts[name] / total for name, _ in [*CATEGORIES, ("event loop and other", ())]}
    # the default path writes profile-<date>.json; another model, profile-<model>-<date>.json
    model = parse_qs(urlsplit(args.path).query).get("model", ["gan"])[0]
    kind = "profile" if model == "gan" else f"profile-{re.sub(r'[^A-Za-z0-9_-]', '_', model)}"
    path = write_result(kind, {"path": args.path, "connections": args.connections, "seconds": args.seconds,
                                    "samples": total, "share": breakdown})
    print(f"{args.path} at {args.connections} connections, {total} py-spy samples (all threads, idle excluded)")
    for name, share in sorted(breakdown.items(), key=lambda kv: -kv[1]):
        print(f"{100 * share:6.1f} %  {name}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
