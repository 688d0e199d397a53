"""Prometheus metrics (prometheus-client), one registry per app, with bounded labels (route template, a
loaded model or "-", status), the process/platform/GC collectors, and the outermost middleware that records
them, gives every request an X-Request-ID and writes its access line."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from urllib.parse import quote

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, disable_created_metrics, generate_latest)
from prometheus_client import multiprocess

from service.logs import ACCESS_LOGGER, current_request_id

disable_created_metrics()  # the *_created series only add noise to scrapes

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
MODEL_KEY = "digitgen.model"  # set in the ASGI scope by routes that serve a model
REQUEST_ID_HEADER = b"x-request-id"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("digitgen_requests", "HTTP requests answered, by route template, method, model "
                                "and status code (route 'unmatched': no route; model '-': none served)",
                                ["route", "method", "model", "status"], registry=self.registry)
        self.latency = Histogram("digitgen_request_duration_seconds", "Seconds from a request's arrival to the end "
                                 "of its response, by route template and model", ["route", "model"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("digitgen_batch_size", "Latents per batched forward pass (requests queued "
                                    "together share one), by model", ["model"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.images = Counter("digitgen_images_generated", "Images the models produced for responses, by model (digit= "
                              "counts the images it returns, not rejected candidates)",
                              ["model"], registry=self.registry)
        # multiprocess_mode: how the workers' values combine under `--workers N` (ignored otherwise)
        self.in_progress = Gauge("digitgen_requests_in_progress", "HTTP requests being served right now",
                                 registry=self.registry, multiprocess_mode="livesum")
        self.ready = Gauge("digitgen_ready", "1 when every model is loaded and warmed up (as /readyz), else 0; "
                           "with several workers the lowest of them", registry=self.registry,
                           multiprocess_mode="livemin")
        self.models_loaded = Gauge("digitgen_models_loaded", "Models in the registry (loaded from "
                                   "DIGITGEN_WEIGHTS_DIR)", registry=self.registry, multiprocess_mode="livemax")
        # the process's memory, CPU and file descriptors (process_*; read from /proc, so Linux only),
        # python_info, and the cyclic garbage collector's runs (python_gc_*)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def exposition(self) -> bytes:
        """What /metrics serves; with several workers their digitgen_* series combined, without the per-process
        process_* and python_gc_* series, which prometheus-client cannot combine."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        PlatformCollector(registry=combined)
        return generate_latest(combined)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


access_log = logging.getLogger(ACCESS_LOGGER)
_sane_request_id = re.compile(rb"[A-Za-z0-9._-]{1,128}").fullmatch


def new_request_id() -> bytes:
    return uuid.uuid4().hex.encode()


def request_id_of(headers) -> bytes:
    """The client's X-Request-ID when it is 1-128 of [A-Za-z0-9._-] (safe in headers and logs), else a new one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value if _sane_request_id(value) else new_request_id()
    return new_request_id()


class MetricsMiddleware:
    """Times every request (labels from the route FastAPI or the lean path put in the scope), gives every
    answer an X-Request-ID, and logs one access line when "digitgen.access" is enabled."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        # (route, method, model, status) -> (request counter, latency histogram): labels() validates its
        # arguments on every call (cost: benchmarks/README.md); the label sets are bounded
        self._children: dict[tuple[str, str, str, str], tuple] = {}

    def _series(self, key: tuple[str, str, str, str]) -> tuple:
        series = self._children.get(key)
        if series is None:
            route, method, model, status = key
            series = (self.metrics.requests.labels(route, method, model, status),
                      self.metrics.latency.labels(route, model))
            self._children[key] = series
        return series

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = request_id_of(scope["headers"])
        id_header = (REQUEST_ID_HEADER, request_id)
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = current_request_id.set(request_id)
        in_progress = self.metrics.in_progress
        in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            # only uvicorn cancels a request, when --graceful-timeout runs out at shutdown: one line, not a
            # traceback from the depths of the stream that was cut
            logging.getLogger("digitgen").warning("%s %s cut off by the shutdown's graceful timeout",
                                                  scope["method"], scope["path"])
        finally:
            in_progress.dec()
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            count, latency = self._series((template, scope["method"], scope.get(MODEL_KEY, "-"), str(status)))
            count.inc()
            latency.observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                log_access(scope, status, elapsed, request_id)
            current_request_id.reset(token)


def log_access(scope, status: int, elapsed: float, request_id: bytes) -> None:
    """`client "METHOD /path?query HTTP/1.1" status 1.23ms request_id=...`, the values also as record fields;
    the path percent-encoded as uvicorn does, so no byte of it can forge a line."""
    client = scope.get("client")
    client = f"{client[0]}:{client[1]}" if client else "-"
    path = quote(scope.get("root_path", "") + scope["path"])
    if scope.get("query_string"):
        path = f"{path}?{quote(scope['query_string'].decode('latin-1'), safe='=&;%+,/:@!$*()~')}"
    method = scope["method"]
    latency_ms = round(elapsed * 1000, 3)
    rid = request_id.decode("ascii")
    access_log.info('%s "%s %s HTTP/%s" %d %.2fms request_id=%s', client, method, path,
                    scope.get("http_version", "1.1"), status, latency_ms, rid,
                    extra={"method": method, "path": path, "status": status, "latency_ms": latency_ms,
                           "request_id": rid, "client": client})
