"""`python -m service [--host --port --workers]`: run the service under uvicorn."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import uvicorn

from service.config import usable_cores


def prepare_workers(workers: int, environ=os.environ) -> None:
    """What several worker processes need before uvicorn starts them (they inherit the environment):

    - torch threads: each worker's inference thread gets its share of the cores rather than all of
      them (N workers x all cores would oversubscribe the CPU), unless DIGITGEN_TORCH_THREADS is set;
    - metrics: prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, a fresh directory
      unless one is given; a given one is emptied of a previous run's values), so /metrics reports
      every worker's counts whichever worker answers the scrape."""
    if workers <= 1:
        return
    environ.setdefault("DIGITGEN_TORCH_THREADS", str(max(1, usable_cores() // workers)))
    directory = environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="digitgen-metrics-")
    environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    for stale in Path(directory).glob("*.db"):
        stale.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description="Serve digitgen's models over HTTP. "
                                     "Configuration comes from DIGITGEN_* environment variables (see README).")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request (faster)")
    parser.add_argument("--graceful-timeout", type=float, default=10.0,
                        help="seconds in-flight requests get to finish after SIGTERM (default 10)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to the handler that was
    # installed before it; this one turns an orderly, drained shutdown into exit status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    prepare_workers(args.workers)
    uvicorn.run("service.main:app", host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, timeout_graceful_shutdown=args.graceful_timeout,
                proxy_headers=True, server_header=False, access_log=not args.no_access_log)


if __name__ == "__main__":
    main()
