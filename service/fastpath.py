"""A lean path for the hottest request: GET /sample answered as a PNG or a .npy array.

FastAPI's per-request machinery (pydantic validation of eight query parameters, four dependency
coroutines, a Response object, the exception middleware) cost several times the framework's own
constant-PNG ceiling per request (profile in benchmarks/README.md). This ASGI middleware answers
the same requests with the same work done directly: it parses the query string, checks every
value against the same limits, runs the same batched forward pass and the same encoders, and
sends the same status, headers and bytes.

It only ever answers requests it fully understands and that will succeed. Anything else — an
unknown or repeated parameter, a value that is not a plain decimal, any limit exceeded, `digit=`,
`format=json`, a wrong API key, a model that is not loaded or cannot sample, a service not yet
ready — goes on to the FastAPI route unchanged, so every error response has one source.
tests/service/test_fastpath.py checks the two paths agree byte for byte.
"""
from __future__ import annotations

import logging
from functools import partial
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse

from service import imaging
from service.deps import bearer_matches
from service.inference import latents_for_seed
from service.metrics import MODEL_KEY
from service.routes import sample as sample_routes
from service.routes.common import INTERNAL_ERROR, NPY_MEDIA_TYPE, output_size_problem
from service.routes.sample import MAX_SEED, new_seed
from service.schemas import MAX_NROW

log = logging.getLogger("digitgen")
_PARAMS = frozenset({"model", "n", "seed", "format", "nrow", "scale"})
_INT_PARAMS = ("n", "seed", "nrow", "scale")


def _plain_int(text: str) -> int | None:
    """Only what every parser reads the same way: 1 to 19 ASCII digits."""
    if 0 < len(text) <= 19 and text.isascii() and text.isdigit():
        return int(text)
    return None


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
        """(model, n, seed, format, nrow, scale) when this request is certain to succeed, else None."""
        state = self.state
        if not state.ready or state.inference is None:
            return None
        settings = state.settings
        if settings.api_key is not None and not self._authorised(scope, settings.api_key.get_secret_value()):
            return None
        try:
            pairs = parse_qsl(scope["query_string"].decode("ascii"), keep_blank_values=True,
                              strict_parsing=False, max_num_fields=len(_PARAMS))
        except (UnicodeDecodeError, ValueError):
            return None
        query = dict(pairs)
        if len(query) != len(pairs) or not query.keys() <= _PARAMS:
            return None
        values = {"n": 1, "seed": None, "nrow": 8, "scale": 1}
        for key in _INT_PARAMS:
            if key in query:
                values[key] = _plain_int(query[key])
                if values[key] is None:
                    return None
        n, seed, nrow, scale = values["n"], values["seed"], values["nrow"], values["scale"]
        fmt = query.get("format", "png")
        if fmt not in ("png", "npy") or not 1 <= n <= settings.max_samples or not 1 <= nrow <= MAX_NROW:
            return None
        if (seed is not None and seed > MAX_SEED) or scale < 1:
            return None
        if fmt == "png" and output_size_problem(settings, n, nrow, scale) is not None:
            return None
        served = state.inference.registry.get(query.get("model", "gan"))
        if served is None or served.kind not in ("vae", "generator"):
            return None
        return served, n, seed, fmt, nrow, scale

    @staticmethod
    def _authorised(scope, key: str) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":  # the first one, as Starlette's request.headers.get reads it
                return bearer_matches(value.decode("latin-1"), key)
        return False

    async def _answer(self, scope, send, served, n, seed, fmt, nrow, scale) -> None:
        scope["route"] = self.route
        scope[MODEL_KEY] = served.name
        seed = new_seed() if seed is None else seed
        # the encoder runs right after the batch's forward pass, where that ran (service/batching.py)
        if fmt == "png":
            finish, media_type = partial(imaging.images_png, nrow=nrow, scale=scale), b"image/png"
        else:
            finish, media_type = imaging.encode_npy, NPY_MEDIA_TYPE.encode()
        body = await self.state.inference.generate(served, latents_for_seed(seed, n, served.latent_dim), finish)
        # the header order of a Starlette Response built with these headers
        headers = [(b"x-seed", str(seed).encode()), (b"x-model", served.name.encode()),
                   (b"content-length", str(len(body)).encode()), (b"content-type", media_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
