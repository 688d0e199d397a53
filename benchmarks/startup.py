"""Process start to /readyz 200 with the bundled weights, a few times.

    .venv/bin/python -m benchmarks.startup [--runs 5] [--device cpu]

Writes benchmarks/results/startup-<date>.json.
"""
from __future__ import annotations

import argparse
import statistics

from benchmarks.common import server, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    seconds = []
    for _ in range(args.runs):
        with server(["-m", "service", "--log-level", "warning"], env={"DIGITGEN_DEVICE": args.device}) as (_, _, s):
            seconds.append(round(s, 3))
    path = write_result("startup", {"device": args.device, "seconds": seconds, "median_s": statistics.median(seconds)})
    print(f"start to /readyz 200: median {statistics.median(seconds):.2f} s over {args.runs} runs {seconds}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
