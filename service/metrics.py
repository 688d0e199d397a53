"""Prometheus metrics (prometheus-client) and the pure-ASGI middleware that records them.

Each app gets its own CollectorRegistry, so several apps (tests) never share counters. Labels
are bounded: the route template (not the raw path), a model name from the registry or "-",
and the status code.
"""
from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client import multiprocess

disable_created_metrics()  # the *_created series only add noise to scrapes

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
MODEL_KEY = "digitgen.model"  # set in the ASGI scope by routes that serve a model


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("digitgen_requests", "HTTP requests", ["route", "method", "model", "status"],
                                registry=self.registry)
        self.latency = Histogram("digitgen_request_duration_seconds", "Request latency", ["route", "model"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("digitgen_batch_size", "Latents per batched forward pass", ["model"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.images = Counter("digitgen_images_generated", "Images produced by the models", ["model"],
                              registry=self.registry)
        # multiprocess_mode: how the workers' values combine under `--workers N` (ignored otherwise)
        self.in_progress = Gauge("digitgen_requests_in_progress", "HTTP requests being served",
                                 registry=self.registry, multiprocess_mode="livesum")
        self.ready = Gauge("digitgen_ready", "1 when every model is loaded and warmed up", registry=self.registry,
                           multiprocess_mode="livemin")
        self.models_loaded = Gauge("digitgen_models_loaded", "Models in the registry", registry=self.registry,
                                   multiprocess_mode="livemax")

    def exposition(self) -> bytes:
        """The text /metrics serves: this process's registry, or with several workers
        (PROMETHEUS_MULTIPROC_DIR, set by `python -m service --workers N`) all workers' values."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return generate_latest(combined)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class MetricsMiddleware:
    """Times every HTTP request; labels come from the matched route (FastAPI puts it in the scope)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        # (route, method, model, status) -> (request counter, latency histogram) children: labels()
        # validates and looks up its arguments on every call, a tenth of a lean /sample request's
        # own cost; the label sets are bounded (route templates, loaded models, status codes)
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
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = self.metrics.in_progress
        in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            in_progress.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            count, latency = self._series((template, scope["method"], scope.get(MODEL_KEY, "-"), str(status)))
            count.inc()
            latency.observe(time.perf_counter() - start)
