"""`python -m service [--host --port --workers]`: run the service under uvicorn."""
from __future__ import annotations

import argparse
import logging
import signal
import sys

import uvicorn


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
    uvicorn.run("service.main:app", host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, timeout_graceful_shutdown=args.graceful_timeout,
                proxy_headers=True, server_header=False, access_log=not args.no_access_log)


if __name__ == "__main__":
    main()
