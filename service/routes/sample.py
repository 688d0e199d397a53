"""GET /sample: images from a generative model, seeded, batched across concurrent requests.

Its rules (limits, headers, caching, encoders) live here once, for the route and for the lean path in
front of FastAPI (LeanSample), which answers the common PNG/npy requests without FastAPI's per-request
machinery and hands everything else to the route (ARCHITECTURE.md)."""
from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from models.sampling import DigitNotFound, seed_latents
from service.caching import NO_STORE, seeded_answer
from service.deps import InferenceDep, SettingsDep, bearer_matches, lookup_model
from service.errors import INTERNAL_ERROR, ApiError, responses
from service.metrics import MODEL_KEY
from service.openapi import model_kinds
from service.registry import GENERATIVE_KINDS
from service.routes.common import (BINARY, CACHE_HEADERS, MODEL_HEADER, NOT_MODIFIED, NPY_MEDIA_TYPE, SEED_HEADER,
                                   check_sample, encoded_response, encoder, new_seed, samples_answer)
from service.schemas import SampleQuery, SampleResponse

log = logging.getLogger("digitgen")
router = APIRouter(tags=["generate"])

SAMPLE_RESPONSES = {
    200: {"content": {"image/png": BINARY, NPY_MEDIA_TYPE: BINARY}, "model": SampleResponse,
          "headers": {"X-Seed": SEED_HEADER, "X-Model": MODEL_HEADER, **CACHE_HEADERS},
          "description": "PNG (one image, or a grid), JSON, or a uint8 .npy array (n, 28, 28)"},
    304: NOT_MODIFIED,
    **responses("invalid_parameters", "limit_exceeded", "output_too_large", "model_not_found", "wrong_model_kind",
                "digit_not_found", "no_classifier", "not_ready"),
}


def sample_identity(inference, settings, served, query: SampleQuery) -> tuple[tuple[str, ...], dict]:
    """What a seeded answer's bytes depend on (service/caching.py): the weights and the normalised parameters;
    digit= also the judging classifier and the rejection settings, format=json the classifier naming classes."""
    params = query.model_dump()
    judge = inference.registry.judge(served)
    if query.digit is None:
        return ((served.sha256, judge.sha256 if judge else "no classifier") if query.format == "json"
                else (served.sha256,)), params
    params.update(rounds=settings.digit_max_rounds, confidence=inference.min_confidence(served))
    return (served.sha256, judge.sha256), params


def answer_headers(inference, settings, served, query: SampleQuery, seed: int,
                   if_none_match: str | None = None) -> tuple[dict[str, str], Response | None]:
    """The answer's headers, and the 304 to send instead when If-None-Match names a seeded answer's ETag."""
    headers = {"X-Seed": str(seed), "X-Model": served.name}
    if query.seed is None:
        return headers | NO_STORE, None
    cached = seeded_answer(headers, "/sample", *sample_identity(inference, settings, served, query),
                           private=settings.api_key is not None, if_none_match=if_none_match)
    return headers, cached


async def render(inference, served, query: SampleQuery, seed: int) -> tuple[bytes, str]:
    """A plain (no digit=) PNG or npy answer: one batched forward pass, encoded right after it."""
    finish, media_type = encoder(query.format, query.nrow, query.scale)
    return await inference.generate(served, seed_latents(served.module, seed, query.n), finish), media_type


@router.get("/sample", summary="Sample digits", response_model=None, responses=SAMPLE_RESPONSES,
            openapi_extra=model_kinds(GENERATIVE_KINDS))
async def sample(request: Request, inference: InferenceDep, settings: SettingsDep,
                 query: Annotated[SampleQuery, Query()]):
    """n=1: one 28x28 PNG (x scale); n>1: one PNG grid. The seed used is in `X-Seed`."""
    served = lookup_model(request, inference.registry, query.model, kinds=GENERATIVE_KINDS, action="sample")
    check_sample(settings, query)
    judge = inference.registry.judge(served)
    if query.digit is not None and judge is None:
        raise ApiError("no_classifier", f"digit=/label= needs a classifier of {served.dataset.title} "
                       f"({served.dataset.classifier}), and none is loaded")
    seed = new_seed() if query.seed is None else query.seed
    headers, cached = answer_headers(inference, settings, served, query, seed, request.headers.get("if-none-match"))
    if cached is not None:
        return cached
    if query.digit is None and query.format != "json":
        body, media_type = await render(inference, served, query, seed)
        return Response(body, media_type=media_type, headers=headers)
    if query.digit is None:
        latents = seed_latents(served.module, seed, query.n)
        images = await inference.generate(served, latents)
    else:
        try:
            latents, images = await inference.run(inference.sample_digit, served, query.digit, query.n, seed)
        except DigitNotFound as exc:
            raise ApiError("digit_not_found", str(exc)) from None
    if query.format != "json":
        return encoded_response(images, query.format, headers, query.nrow, query.scale)
    return await samples_answer(inference, served, images, latents, headers, seed=seed, digit=query.digit,
                                scale=query.scale)


ROUTE = next(r for r in router.routes if getattr(r, "path", None) == "/sample")
# what the lean path answers: every SampleQuery field but digit/label (rejection sampling runs in the thread)
_LEAN_PARAMS = frozenset(SampleQuery.model_fields) - {"digit", "label"}


class LeanSample:
    """ASGI: GET /sample as PNG or npy, answered with the route's own rules when the request is certain to
    succeed; anything else (an error, digit=, json, If-None-Match, a repeated or unknown parameter, a service
    not ready) goes on to the route, so every error has one source. Faster: benchmarks/README.md."""

    def __init__(self, app, state):
        self.app = app
        self.state = state  # settings, inference, ready: filled in by the lifespan

    async def __call__(self, scope, receive, send):
        plan = self._plan(scope) if scope["type"] == "http" and scope["path"] == "/sample" else None
        if plan is None:
            await self.app(scope, receive, send)
            return
        try:
            await self._answer(scope, send, *plan)
        except Exception:
            # in front of FastAPI's error middleware: its JSON 500; nothing was sent before the work was done
            log.exception("unhandled error on GET /sample (lean path)")
            await JSONResponse(INTERNAL_ERROR, status_code=500)(scope, receive, send)

    def _plan(self, scope):
        """(model, query) when this request is certain to succeed, else None."""
        state = self.state
        if scope["method"] != "GET" or not state.ready or state.inference is None:
            return None
        settings = state.settings
        authorization = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                return None  # conditional requests (a 304, maybe) are the route's
            if name == b"authorization" and authorization is None:  # the first, as Starlette reads it
                authorization = value
        if settings.api_key is not None and not bearer_matches((authorization or b"").decode("latin-1"),
                                                               settings.api_key.get_secret_value()):
            return None
        try:
            pairs = parse_qsl(scope["query_string"].decode("ascii"), keep_blank_values=True,
                              max_num_fields=len(_LEAN_PARAMS))
            query = dict(pairs)
            if len(query) != len(pairs) or not query.keys() <= _LEAN_PARAMS or "" in query.values():
                return None
            parsed = SampleQuery.model_validate(query)
            if parsed.format == "json":
                return None
            check_sample(settings, parsed)
        except (UnicodeDecodeError, ValueError, ValidationError, ApiError):
            return None
        served = state.inference.registry.get(parsed.model)
        return (served, parsed) if served is not None and served.is_generative else None

    async def _answer(self, scope, send, served, query: SampleQuery) -> None:
        scope["route"], scope[MODEL_KEY] = ROUTE, served.name  # the metrics label both paths alike
        inference, settings = self.state.inference, self.state.settings
        seed = new_seed() if query.seed is None else query.seed
        body, media_type = await render(inference, served, query, seed)
        headers = [(name.lower().encode(), value.encode())
                   for name, value in answer_headers(inference, settings, served, query, seed)[0].items()]
        # then what Starlette's Response adds, in its order
        headers += [(b"content-length", str(len(body)).encode()), (b"content-type", media_type.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
