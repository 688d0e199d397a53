"""App factory and lifespan: load and warm every model before serving, release on shutdown.

`uvicorn service.main:app` or `python -m service`.
"""
from __future__ import annotations

import gc
import logging
import os
from contextlib import asynccontextmanager

import torch
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from PIL import Image
from prometheus_client import multiprocess

from service.config import Settings, get_settings, usable_cores
from service.deps import require_api_key
from service.fastpath import SampleFastPath
from service.inference import Inference
from service.metrics import Metrics, MetricsMiddleware, multiprocess_dir
from service.registry import RegistryError, load_registry
from service.routes import images, latents, ops, sample
from service.routes.common import ERROR_RESPONSES, INTERNAL_ERROR

log = logging.getLogger("digitgen")


def configure_torch(settings: Settings) -> int:
    """Intra-op threads for the inference thread = the CPU cores this process may use (or the
    setting); one inter-op thread, because the service runs one inference thread and batches instead.

    The event loop's own thread gets one intra-op thread. The only torch work it does is batches
    small enough to run in place (service/batching.py), and for those a second OpenMP thread costs
    more than it gives: once the inference thread has its own OpenMP team, the process has more
    OpenMP threads than cores, libgomp stops spinning, and every parallel region of a small batch
    waits on a futex wake-up. Measured on the 2-core machine: single-PNG requests of the report's
    MLP fell from 8.9k to 6.7k/s after one burst of bulk requests with two threads on the loop, and
    stayed at 9.3k with one (benchmarks/README.md). torch's thread count is per thread, so the
    inference thread keeps all cores for bulk work (it sets its own, service/inference.py)."""
    threads = settings.torch_threads or usable_cores()
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # can only be set once per process (tests create many apps)
        pass
    torch.set_num_threads(1)  # this (the event loop's) thread; the inference thread sets `threads`
    return threads


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    threads = configure_torch(settings)
    # Pillow's own decompression-bomb guard follows the setting too (imaging.py checks first)
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    try:
        registry = load_registry(settings.weights_dir, settings.device)
    except RegistryError as exc:
        log.error("startup failed: %s", exc)
        raise
    inference = Inference(registry, metrics, settings.max_batch_size, settings.batch_wait_ms,
                          settings.digit_max_rounds, settings.digit_min_confidence, settings.inline_budget_ms,
                          torch_threads=threads)
    inference.start()
    # everything loaded so far lives as long as the process: keep it out of the cyclic GC's
    # generations, so full collections under load do not walk torch's and FastAPI's object graphs
    gc.collect()
    gc.freeze()
    app.state.inference = inference
    app.state.ready = True
    metrics.ready.set(1)
    metrics.models_loaded.set(len(registry.models))
    log.info("digitgen ready on %s (%d torch threads for the inference thread): %s", registry.device, threads,
             ", ".join(f"{m.name}[{m.kind}]" for m in registry.models.values()))
    log.info("batches run on the event loop up to: %s (DIGITGEN_INLINE_BUDGET_MS=%g)",
             ", ".join(f"{name} {rows} rows" for name, rows in inference.inline_rows.items()),
             settings.inline_budget_ms)
    try:
        yield
    finally:
        app.state.ready = False  # /readyz answers 503 while draining
        metrics.ready.set(0)
        await inference.stop()
        if multiprocess_dir() is not None:  # this worker's live gauges stop counting
            multiprocess.mark_process_dead(os.getpid())


def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default body echoes the input back; keep locations and messages only.
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(INTERNAL_ERROR, status_code=500)


def create_api(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app: every route, the error handlers and the lifespan."""
    settings = settings or get_settings()
    app = FastAPI(
        title="digitgen",
        version="0.1.0",
        summary="Handwritten-digit generation (VAE, GAN) over HTTP.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.ready = False
    app.state.inference = None

    secured = [Depends(require_api_key)]
    for router in (sample.router, images.router, latents.router, ops.router):
        app.include_router(router, dependencies=secured, responses=ERROR_RESPONSES)
    app.include_router(ops.public)

    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app


class Service:
    """The ASGI app uvicorn runs: metrics, CORS and the lean /sample path in front of the FastAPI app.

    In front rather than inside FastAPI's middleware stack, so a lean request skips the layers it
    does not need (FastAPI's error, telemetry and body-limit middleware): 3 % more single-PNG
    requests/s for the report's MLP on the 2-core machine (medians of three 5-s wrk runs each,
    8.76k vs 8.47k). Every other request goes through all of FastAPI as before. Order, outermost
    first: metrics (times everything), CORS (headers on every answer), lean path, FastAPI. The lean
    path answers its own failures with the same JSON 500 as FastAPI's handler."""

    def __init__(self, api: FastAPI):
        self.api = api
        settings: Settings = api.state.settings
        inner = api
        if settings.fast_path:
            inner = SampleFastPath(inner, state=api.state)
        if settings.cors_origins:
            inner = CORSMiddleware(inner, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                                   allow_headers=["Authorization", "Content-Type"], expose_headers=["X-Seed"])
        self._app = MetricsMiddleware(inner, metrics=api.state.metrics)

    @property
    def state(self):
        return self.api.state

    async def __call__(self, scope, receive, send) -> None:
        await self._app(scope, receive, send)


def create_app(settings: Settings | None = None) -> Service:
    return Service(create_api(settings))


app = create_app()
