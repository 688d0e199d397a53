"""App factory and lifespan: load and warm every model before serving, release on shutdown.

`uvicorn service.main:app` or `python -m service`.
"""
from __future__ import annotations

import gc
import logging
import os
from contextlib import asynccontextmanager

import torch
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from PIL import Image
from prometheus_client import multiprocess

from service.config import Settings, get_settings, usable_cores
from service.deps import require_api_key
from service.fastpath import SampleFastPath
from service.inference import Inference
from service.logs import configure_if_unset as configure_logging_if_unset
from service.metrics import Metrics, MetricsMiddleware, multiprocess_dir
from service.registry import RegistryError, load_registry
from service import __version__
from service.errors import install_handlers
from service.head import HeadAsGet
from service.linger import LingerAfter413
from service.openapi import install_openapi
from service.routes import dataset, images, latents, ops, page, sample

log = logging.getLogger("digitgen")


def configure_torch(settings: Settings) -> int:
    """Intra-op threads for the inference thread = the CPU cores this process may use (or the
    setting); one inter-op thread, because the service runs one inference thread and batches instead.

    The event loop's own thread gets one intra-op thread. The only torch work it does is batches
    small enough to run in place (service/batching.py), and for those a second OpenMP thread costs
    more than it gives: once the inference thread has its own OpenMP team, the process has more
    OpenMP threads than cores, libgomp stops spinning, and every parallel region of a small batch
    waits on a futex wake-up (figures: benchmarks/README.md). torch's thread count is per thread, so the
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
    inference = Inference(registry, metrics, settings, torch_threads=threads)
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


API_DESCRIPTION = """Samples, reconstructions, interpolations and latent vectors from digitgen's MNIST models.

Every error is JSON `{"detail": "...", "code": "...", "errors": [...]}`; the codes are listed with each
operation's responses. Same model + seed + parameters: the same bytes, on any machine."""


def create_api(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app: every route, the error handlers, the lifespan and the completed OpenAPI schema.
    /docs and /redoc load their JavaScript and CSS from the service itself (fastapi-offline ships
    them), so they work without internet access."""
    settings = settings or get_settings()
    app = FastAPIOffline(
        title="digitgen",
        version=__version__,
        summary="Handwritten-digit generation (VAE, GAN) over HTTP.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        static_url="/docs-static",
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.ready = False
    app.state.inference = None

    # the key dependency only where a key is set, so /openapi.json declares the bearer scheme (and
    # /docs shows Authorize) exactly when the service asks for it
    secured = [Depends(require_api_key)] if settings.api_key is not None else []
    for router in (sample.router, dataset.router, images.router, latents.router, ops.router):
        app.include_router(router, dependencies=secured)
    app.include_router(ops.public)
    app.include_router(page.router)  # GET / and /ui/: public, like the probes
    install_handlers(app)
    install_openapi(app)
    app.add_middleware(HeadAsGet)
    app.add_middleware(LingerAfter413)
    return app


class Service:
    """The ASGI app uvicorn runs: metrics, CORS and the lean /sample path in front of the FastAPI app.

    In front rather than inside FastAPI's middleware stack, so a lean request skips the layers it
    does not need (FastAPI's error, telemetry and body-limit middleware; figures in
    benchmarks/README.md). Every other request goes through all of FastAPI as before. Order, outermost
    first: metrics (times everything, X-Request-ID on every answer, the access log), CORS (headers on
    every answer), lean path, FastAPI. The lean path answers its own failures with the same JSON
    500 as FastAPI's handler.

    Building it also sets up logging when nothing has (`uvicorn service.main:app`; service/logs.py)."""

    # what browsers may read from a cross-origin response besides the CORS-safelisted headers
    EXPOSED_HEADERS = ["X-Seed", "X-Seed-A", "X-Seed-B", "X-Model", "X-Label-Source", "X-Class-Shares",
                       "X-Labels-Verified", "X-Request-ID", "ETag"]

    def __init__(self, api: FastAPI):
        self.api = api
        settings: Settings = api.state.settings
        configure_logging_if_unset(settings)
        inner = api
        if settings.fast_path:
            inner = SampleFastPath(inner, state=api.state)
        if settings.cors_origins:
            inner = CORSMiddleware(inner, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                                   allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                                   expose_headers=self.EXPOSED_HEADERS)
        self._app = MetricsMiddleware(inner, metrics=api.state.metrics)

    @property
    def state(self):
        return self.api.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    async def _lifespan(self, scope, receive, send) -> None:
        """A startup that fails for a known cause (RegistryError: a device, a weights file) was
        logged by the lifespan as one line naming it. Starlette's lifespan.startup.failed message
        carries the traceback, which uvicorn would print around that line: here it goes without
        one, so uvicorn prints just "Application startup failed. Exiting." and exits non-zero.
        Any other exception is a bug and keeps its traceback."""
        failed = None

        async def hold_failure(message):
            nonlocal failed
            if message["type"] == "lifespan.startup.failed":
                failed = message  # sent below, once the exception says what failed
                return
            await send(message)

        try:
            await self._app(scope, receive, hold_failure)
        except RegistryError:
            if failed is not None:
                await send({"type": "lifespan.startup.failed", "message": ""})
            raise  # uvicorn ignores it after startup.failed; TestClient raises it
        except BaseException:
            if failed is not None:
                await send(failed)
            raise
        if failed is not None:  # a lifespan that reported failure without raising
            await send(failed)


def create_app(settings: Settings | None = None) -> Service:
    return Service(create_api(settings))


app = create_app()
