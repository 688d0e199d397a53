"""GET /sample: images from a generative model, seeded, batched across concurrent requests."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from models.sampling import DigitNotFound, seed_latents
from service.caching import NO_STORE, seeded_answer
from service.deps import InferenceDep, SettingsDep, lookup_model
from service.errors import ApiError, responses
from service.openapi import GENERATIVE, model_kinds
from service.routes.common import (BINARY, CACHE_HEADERS, MODEL_HEADER, NOT_MODIFIED, NPY_MEDIA_TYPE, SEED_HEADER, json_response, new_seed,
                                   npy_response, png_response, sample_problem, samples_json)
from service.schemas import SampleQuery, SampleResponse

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
    """What a seeded /sample answer's bytes depend on: weights and normalised parameters (service/caching.py).
    digit= also depends on the classifier that judges and on the rejection settings; format=json on the
    classifier that names each image's class (or that there is none)."""
    params = query.model_dump()
    judge = inference.registry.judge(served)
    if query.digit is None:
        return ((served.sha256, judge.sha256 if judge else "no classifier") if query.format == "json"
                else (served.sha256,)), params
    params.update(rounds=settings.digit_max_rounds, confidence=inference.min_confidence(served))
    return (served.sha256, judge.sha256), params


@router.get("/sample", summary="Sample digits", response_model=None, responses=SAMPLE_RESPONSES,
            openapi_extra=model_kinds(GENERATIVE))
async def sample(request: Request, inference: InferenceDep, settings: SettingsDep,
                 query: Annotated[SampleQuery, Query()]):
    """n=1: one 28x28 PNG (x scale); n>1: one PNG grid. The seed used is in `X-Seed`."""
    served = lookup_model(request, inference.registry, query.model, kinds=GENERATIVE, action="sample")
    problem = sample_problem(settings, query)
    if problem is not None:
        raise problem
    judge = inference.registry.judge(served)
    if query.digit is not None and judge is None:
        raise ApiError("no_classifier", f"digit=/label= needs a classifier of {served.dataset.title} "
                       f"({served.dataset.classifier}), and none is loaded")
    seed = new_seed() if query.seed is None else query.seed
    headers = {"X-Seed": str(seed), "X-Model": served.name}
    if query.seed is None:
        headers.update(NO_STORE)
    else:
        cached = seeded_answer(headers, "/sample", *sample_identity(inference, settings, served, query),
                               private=settings.api_key is not None,
                               if_none_match=request.headers.get("if-none-match"))
        if cached is not None:
            return cached
    if query.digit is None:
        latents = seed_latents(served.module, seed, query.n)
        images = await inference.generate(served, latents)
    else:
        try:
            latents, images = await inference.run(inference.sample_digit, served, query.digit, query.n, seed)
        except DigitNotFound as exc:
            raise ApiError("digit_not_found", str(exc)) from None
    if query.format == "png":
        return png_response(images, query.nrow, query.scale, headers)
    if query.format == "npy":
        return npy_response(images, headers)
    verdict = await inference.run(inference.classify, judge, images) if judge else None
    body = {"model": served.name, "seed": seed, "n": query.n, "latent_dim": served.latent_dim,
            "requested_digit": query.digit, "samples": samples_json(images, latents, verdict, query.scale)}
    return json_response(body, headers)
