"""App factory and lifespan: load and warm every model before serving, release on shutdown
(`uvicorn service.main:app` or `python -m service`)."""
from __future__ import annotations

import gc
import logging
import os
import sys
from contextlib import asynccontextmanager

import torch
from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from PIL import Image
from prometheus_client import multiprocess

from service.config import Settings, get_settings, usable_cores
from service.deps import require_api_key
from service.inference import Inference
from service.logs import configure_if_unset as configure_logging_if_unset
from service.metrics import Metrics, multiprocess_dir
from service.middleware import build_stack
from service.registry import RegistryError, load_registry
from service import __version__
from service.errors import install_handlers
from service.openapi import install_openapi
from service.routes import dataset, images, latents, ops, page, sample

log = logging.getLogger("digitgen")


def configure_torch(settings: Settings) -> int:
    """The inference thread's intra-op threads (the usable cores, or the setting), returned; the event
    loop's thread keeps one, since more OpenMP threads than cores make its small inline batches wait on
    futex wake-ups (ARCHITECTURE.md, "Threads")."""
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
    # what is loaded lives as long as the process: out of the cyclic GC's sight, so collections stay short
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
    """The FastAPI app: routes, error handlers, lifespan, OpenAPI schema; /docs work offline (fastapi-offline)."""
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

    # only where a key is set, so /openapi.json declares the bearer scheme exactly when it is asked for
    secured = [Depends(require_api_key)] if settings.api_key is not None else []
    for router in (sample.router, dataset.router, images.router, latents.router, ops.router):
        app.include_router(router, dependencies=secured)
    app.include_router(ops.public)
    app.include_router(page.router)  # GET / and /ui/: public, like the probes
    install_handlers(app)
    install_openapi(app)
    return app


class Service:
    """The ASGI app uvicorn runs: the FastAPI app inside its middleware stack. Building it also sets up
    logging when nothing has (`uvicorn service.main:app`; service/logs.py)."""

    def __init__(self, api: FastAPI):
        self.api = api
        self.state = api.state
        configure_logging_if_unset(api.state.settings)
        self._app = build_stack(api)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self._app(scope, receive, send)
            return

        async def quiet_send(message):
            # a known startup fault (a device, a weights file) was logged in one line: no traceback after it
            if message["type"] == "lifespan.startup.failed" and isinstance(sys.exc_info()[1], RegistryError):
                message = {**message, "message": ""}
            await send(message)

        await self._app(scope, receive, quiet_send)


def create_app(settings: Settings | None = None) -> Service:
    return Service(create_api(settings))


app = create_app()
