"""GET /sample: images from a generative model, seeded, batched across concurrent requests."""
from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from service.deps import InferenceDep, ModelName, SettingsDep, check_limit, lookup_model
from service.inference import DigitNotFound, latents_for_seed
from service.routes.common import (IMAGE_RESPONSES, check_output_size, json_response,
                                   npy_response, png_response, samples_json)
from service.schemas import MAX_NROW, SampleResponse

router = APIRouter(tags=["generate"])
MAX_SEED = 2**63 - 1


def new_seed() -> int:
    return secrets.randbits(31)  # short enough to type back in


@router.get(
    "/sample",
    summary="Sample digits",
    response_model=None,
    responses={**IMAGE_RESPONSES, 200: {**IMAGE_RESPONSES[200], "model": SampleResponse}},
)
async def sample(
    request: Request,
    inference: InferenceDep,
    settings: SettingsDep,
    model: ModelName = "gan",
    n: Annotated[int, Query(ge=1, description="number of images (limit DIGITGEN_MAX_SAMPLES)")] = 1,
    seed: Annotated[int | None, Query(ge=0, le=MAX_SEED, description="same seed, same images")] = None,
    digit: Annotated[int | None, Query(ge=0, le=9, description="only samples the classifier labels as this")] = None,
    format: Literal["png", "json", "npy"] = "png",
    nrow: Annotated[int, Query(ge=1, le=MAX_NROW, description="images per grid row")] = 8,
    scale: Annotated[int, Query(ge=1, description="nearest-neighbour enlargement")] = 1,
):
    """n=1: one 28x28 PNG (x scale); n>1: one PNG grid. The seed used is in `X-Seed`."""
    served = lookup_model(request, inference.registry, model, kinds=("vae", "generator"), action="sample")
    check_limit(n, settings.max_samples, "n", "MAX_SAMPLES")
    if format != "npy":
        check_output_size(settings, n, nrow, scale)
    if digit is not None and inference.registry.classifier is None:
        raise HTTPException(422, "digit= needs a classifier, and none is loaded")
    seed = new_seed() if seed is None else seed
    headers = {"X-Seed": str(seed), "X-Model": served.name}
    if digit is None:
        latents = latents_for_seed(seed, n, served.latent_dim)
        images = await inference.generate(served, latents)
    else:
        try:
            latents, images = await inference.run(inference.sample_digit, served, digit, n, seed)
        except DigitNotFound as exc:
            raise HTTPException(422, str(exc)) from None
    if format == "png":
        return png_response(images, nrow, scale, headers)
    if format == "npy":
        return npy_response(images, headers)
    verdict = await inference.run(inference.classify, images) if inference.registry.classifier else None
    body = {"model": served.name, "seed": seed, "n": n, "latent_dim": served.latent_dim,
            "requested_digit": digit, "samples": samples_json(images, latents, verdict, scale)}
    return json_response(body, headers)
