"""`python -m service [--host --port --workers]`: uvicorn with the guarded protocol. Bad settings, a missing
GPU or weights folder stop it before uvicorn starts: one line per problem on stderr, exit status 2."""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
from functools import partial
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from service.config import LOG_LEVELS, Settings, usable_cores
from service.logs import logging_config
from service.protocol import GuardedHttpToolsProtocol
from service.registry import RegistryError, serving_device, weights_files

CONFIG_ERROR = 2  # the exit status for settings the service cannot start with
# the flag's default: one process, for process managers that run one per container (Kubernetes: scale
# with replicas); `make serve` and the container image ask for auto
DEFAULT_WORKERS = "1"
AUTO_MAX_WORKERS = 4


def worker_count(value: str) -> int:
    """--workers: a count, or "auto": one per usable core, at most AUTO_MAX_WORKERS (each holds its own torch)."""
    if value == "auto":
        return min(usable_cores(), AUTO_MAX_WORKERS)
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of worker processes or 'auto', not {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {count}")
    return count


def prepare_workers(workers: int, environ=os.environ) -> None:
    """Before uvicorn starts several workers: each inference thread gets its share of the cores (unless
    DIGITGEN_TORCH_THREADS is set), and /metrics combines the workers (a fresh PROMETHEUS_MULTIPROC_DIR)."""
    if workers <= 1:
        return
    environ.setdefault("DIGITGEN_TORCH_THREADS", str(max(1, usable_cores() // workers)))
    directory = environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="digitgen-metrics-")
    environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    for stale in Path(directory).glob("*.db"):
        stale.unlink()


def _shown(value, limit: int = 60) -> str:
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def settings_errors(exc: ValidationError | SettingsError) -> list[str]:
    """One line per invalid setting, naming its environment variable, the value and what it may be."""
    if isinstance(exc, SettingsError):  # pydantic-settings could not parse a list/dict value as JSON
        match = re.search(r'field "(\w+)"', str(exc))
        name = f"DIGITGEN_{match.group(1).upper()}" if match else "a DIGITGEN_ setting"
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError):
            return [f"{name} is not valid: must be JSON, e.g. '[\"https://a.example\"]' ({cause})"]
        return [f"{name} is not valid: {cause or exc}"]
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error.get("loc") else ""
        name = f"DIGITGEN_{field.upper()}" if field else "a DIGITGEN_ setting"
        reason = error["msg"].removeprefix("Value error, ")
        reason = re.sub(r"^Input should", "should", reason)
        value = "" if field == "api_key" or "input" not in error else f"={_shown(error['input'])}"
        lines.append(f"{name}{value} is not valid: {reason}")
    return lines


def preflight(settings: Settings) -> list[str]:
    """What would stop every worker at startup and can be known before uvicorn starts, by the registry's own
    checks (each file is checked as it loads). CUDA is touched for a cuda device only: auto and cpu resolve."""
    checks = [partial(weights_files, settings.weights_dir)]
    if settings.device.startswith("cuda"):
        checks.insert(0, partial(serving_device, settings.device))
    problems = []
    for check in checks:
        try:
            check()
        except RegistryError as exc:
            problems.append(str(exc))
    return problems


def checked_settings() -> Settings:
    """The settings, or exit status 2 after one line per problem on stderr (no traceback)."""
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        problems = settings_errors(exc)
    else:
        problems = preflight(settings)
    if problems:
        for line in problems:
            print(f"digitgen: {line}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description="Serve digitgen's models over HTTP. "
                                     "Configuration comes from DIGITGEN_* environment variables (see README).")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--workers", type=worker_count, default=DEFAULT_WORKERS,
                        help=f"worker processes, or auto: one per usable CPU core (default {DEFAULT_WORKERS})")
    parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS,
                        help="default: DIGITGEN_LOG_LEVEL, else info")
    parser.add_argument("--no-access-log", action="store_true",
                        help="no access-log line per request (logger digitgen.access; a little faster)")
    parser.add_argument("--graceful-timeout", type=float, default=10.0,
                        help="seconds in-flight requests get to finish after SIGTERM (default 10)")
    args = parser.parse_args(argv)
    settings = checked_settings()
    level = args.log_level or settings.log_level
    # applied by uvicorn in this process and in every worker; uvicorn's own access log stays off,
    # ours (service/metrics.py) replaces it
    log_config = logging_config(level, settings.log_format, access_log=not args.no_access_log)
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to the handler that was
    # installed before it; this one turns an orderly, drained shutdown into exit status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    prepare_workers(args.workers)
    # the httptools protocol with header size and time limits and a connection cap (service/protocol.py)
    uvicorn.run("service.main:app", host=args.host, port=args.port, workers=args.workers,
                http=GuardedHttpToolsProtocol, timeout_keep_alive=settings.keepalive_timeout_s,
                log_config=log_config, log_level=level, timeout_graceful_shutdown=args.graceful_timeout,
                proxy_headers=True, server_header=False, access_log=False)


if __name__ == "__main__":
    main()
