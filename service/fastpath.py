"""A lean path for the hottest request: GET /sample answered as a PNG or a .npy array.

FastAPI's per-request machinery (pydantic validation of eight query parameters, four dependency
coroutines, a Response object, the exception middleware) cost several times the framework's own
constant-PNG ceiling per request (profile in benchmarks/README.md). This ASGI middleware answers
the same requests with the same work done directly: it parses the query string, checks every
value against the same limits, runs the same batched forward pass and the same encoders, and
sends the same status, headers and bytes.

It only ever answers requests it fully understands and that will succeed. It reads the query
with the route's own `SampleQuery` model and checks it with the route's own `sample_problem`, so
the two cannot disagree on defaults or limits. Anything else — an unknown, repeated or blank
parameter, a value the model rejects, a limit exceeded, `digit=`, `format=json`, a wrong API key,
a model that is not loaded or cannot sample, a service not yet ready — goes on to the FastAPI
route unchanged, so every error response has one source.
tests/service/test_fastpath.py checks the two paths agree byte for byte.
"""
from __future__ import annotations

import logging
from functools import partial
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.responses import JSONResponse

from models.sampling import seed_latents
from service import imaging
from service.caching import cache_headers, etag
from service.deps import bearer_matches
from service.errors import INTERNAL_ERROR
from service.metrics import MODEL_KEY
from service.routes import sample as sample_routes
from service.routes.common import NPY_MEDIA_TYPE, new_seed, sample_problem
from service.schemas import SampleQuery

log = logging.getLogger("digitgen")
# what the lean path answers: every SampleQuery field but digit/label (rejection sampling runs in the thread)
_PARAMS = frozenset(SampleQuery.model_fields) - {"digit", "label"}


class SampleFastPath:
    def __init__(self, app, state):
        self.app = app
        self.state = state  # settings, inference, ready: filled in by the lifespan
        # the /sample route goes in the scope, so the metrics label both paths the same
        self.route = next(r for r in sample_routes.router.routes if getattr(r, "path", None) == "/sample")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/sample" and scope["method"] == "GET":
            plan = self._plan(scope)
            if plan is not None:
                try:
                    await self._answer(scope, send, *plan)
                except Exception:
                    # what FastAPI's error handler does for the route: log it, answer a JSON 500 (this
                    # path sits in front of FastAPI's error middleware); _answer sends nothing before
                    # its work is done, so no response has started
                    log.exception("unhandled error on GET /sample (lean path)")
                    await JSONResponse(INTERNAL_ERROR, status_code=500)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _plan(self, scope):
        """(model, query) when this request is certain to succeed, else None."""
        state = self.state
        if not state.ready or state.inference is None:
            return None
        settings = state.settings
        if settings.api_key is not None and not self._authorised(scope, settings.api_key.get_secret_value()):
            return None
        if any(name == b"if-none-match" for name, _ in scope["headers"]):
            return None  # conditional requests (a 304, maybe) are the route's
        try:
            pairs = parse_qsl(scope["query_string"].decode("ascii"), keep_blank_values=True,
                              strict_parsing=False, max_num_fields=len(_PARAMS))
        except (UnicodeDecodeError, ValueError):
            return None
        query = dict(pairs)
        if len(query) != len(pairs) or not query.keys() <= _PARAMS or "" in query.values():
            return None
        try:
            parsed = SampleQuery.model_validate(query)
        except ValidationError:
            return None
        if parsed.format == "json" or sample_problem(settings, parsed) is not None:
            return None
        served = state.inference.registry.get(parsed.model)
        if served is None or not served.is_generative:
            return None
        return served, parsed

    @staticmethod
    def _authorised(scope, key: str) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":  # the first one, as Starlette's request.headers.get reads it
                return bearer_matches(value.decode("latin-1"), key)
        return False

    async def _answer(self, scope, send, served, query: SampleQuery) -> None:
        scope["route"] = self.route
        scope[MODEL_KEY] = served.name
        seed = new_seed() if query.seed is None else query.seed
        # the encoder runs right after the batch's forward pass, where that ran (service/batching.py)
        if query.format == "png":
            finish, media_type = partial(imaging.images_png, nrow=query.nrow, scale=query.scale), b"image/png"
        else:
            finish, media_type = imaging.encode_npy, NPY_MEDIA_TYPE.encode()
        latents = seed_latents(served.module, seed, query.n)
        body = await self.state.inference.generate(served, latents, finish)
        # the headers of the route's Response, in the order Starlette writes them
        headers = [(b"x-seed", str(seed).encode()), (b"x-model", served.name.encode())]
        if query.seed is None:
            headers.append((b"cache-control", b"no-store"))
        else:
            settings = self.state.settings
            tag = etag("/sample", *sample_routes.sample_identity(self.state.inference, settings, served, query))
            headers.extend((name.lower().encode(), value.encode())
                           for name, value in cache_headers(tag, settings.api_key is not None).items())
        headers += [(b"content-length", str(len(body)).encode()), (b"content-type", media_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
