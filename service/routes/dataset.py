"""GET /dataset: labelled synthetic digits for training other models, streamed as npz or tar."""
from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from models import synthetic
from service import archives
from service.caching import NO_STORE, seeded_answer
from service.deps import InferenceDep, SettingsDep, lookup_model
from service.errors import ApiError, responses
from service.middleware import HEAD_KEY
from service.openapi import model_kinds
from service.registry import GENERATIVE_KINDS
from service.routes.common import (BINARY, CACHE_HEADERS, MODEL_HEADER, NOT_MODIFIED, SEED_HEADER, check_limit, header,
                                   new_seed)
from service.schemas import DatasetQuery

router = APIRouter(tags=["generate"])
MEDIA_TYPES = {"npz": archives.NPZ_MEDIA_TYPE, "tar": archives.TAR_MEDIA_TYPE}

DATASET_RESPONSES = {
    200: {"content": {media_type: BINARY for media_type in MEDIA_TYPES.values()},
          "headers": {"X-Seed": SEED_HEADER, "X-Model": MODEL_HEADER,
                      "X-Label-Source": header("generator: each label is the class the model was asked for; "
                                               "classifier: the model's classifier's verdict", "generator"),
                      "X-Class-Shares": header("equal: every class asked for (digits=, default all) has the same "
                                               "share, item i being class digits[i mod len(digits)]; as-drawn: a "
                                               "model without classes, whose shares are the ones it happens to "
                                               "draw, not held within 9-11 % (its class_histogram in /models)",
                                               "equal"),
                      "X-Labels-Verified": header("true: labels checked by the model's classifier (verified=true: "
                                                  "an off-class item drawn again, up to 8 draws; or a model without "
                                                  "classes, labelled by it)", "false"),
                      **CACHE_HEADERS},
          "description": "the slice [offset, offset + n) of the model's labelled sequence for this seed, streamed"},
    304: NOT_MODIFIED,
    **responses("invalid_parameters", "limit_exceeded", "model_not_found", "wrong_model_kind", "no_classes",
                "no_classifier", "not_ready"),
}


@router.get("/dataset", summary="A labelled synthetic dataset (npz or WebDataset tar)", response_class=StreamingResponse,
            responses=DATASET_RESPONSES, openapi_extra=model_kinds(GENERATIVE_KINDS))
async def get_dataset(request: Request, inference: InferenceDep, settings: SettingsDep,
                      query: Annotated[DatasetQuery, Query()]):
    """Streamed block by block: memory stays flat whatever n is, and a client that goes away stops the work.
    A class-conditional model (vae-exemplar, the default, and gan) gives each class an equal share, labelled
    with the class asked for; a model without classes is labelled by its dataset's classifier (`X-Label-Source`)."""
    if "model" not in query.model_fields_set and inference.registry.get(query.model) is None:
        query.model = synthetic.FALLBACK_MODEL  # a weights folder without the default model
    served = lookup_model(request, inference.registry, query.model, kinds=GENERATIVE_KINDS, action="make a dataset")
    check_limit(query.n, settings.max_dataset, "n", "MAX_DATASET")
    conditional = synthetic.is_conditional(served.module)
    if query.digits is not None and not conditional:
        raise ApiError("no_classes", f"model {served.name!r} has no classes, so digits=/labels= cannot choose them; "
                       "leave digits out (labels then come from the classifier) or use a class-conditional model")
    judge = inference.registry.judge(served)
    # a model without classes is labelled by its classifier: its verified sequence is its plain one
    verified = query.verified and conditional
    if (verified or not conditional) and judge is None:
        why = "verified=true needs" if conditional else f"model {served.name!r} has no classes, so it needs"
        raise ApiError("no_classifier", f"{why} a classifier of {served.dataset.title} ({served.dataset.classifier}) "
                       "to label its samples, and none is loaded")
    seed = new_seed() if query.seed is None else query.seed
    digits, n, offset = query.digit_tuple(), query.n, query.offset
    filename = f"digitgen-{served.name}-seed{seed}-{offset}-{offset + n}{'-verified' if verified else ''}.{query.format}"
    headers = {"X-Seed": str(seed), "X-Model": served.name, "X-Label-Source": synthetic.label_source(served.module),
               "X-Class-Shares": "equal" if conditional else "as-drawn",
               "X-Labels-Verified": "true" if verified or not conditional else "false",
               "Content-Disposition": f'attachment; filename="{filename}"'}
    if query.seed is None:
        headers.update(NO_STORE)
    else:
        weights = (served.sha256,) if conditional and not verified else (served.sha256, judge.sha256)
        cached = seeded_answer(headers, "/dataset", weights, {**query.model_dump(), "digits": digits,
                                                               "verified": verified},
                               private=settings.api_key is not None, if_none_match=request.headers.get("if-none-match"))
        if cached is not None:
            return cached

    def make(block, lo, hi):
        return asyncio.ensure_future(inference.run(inference.dataset_rows, served, seed, block, digits, lo, hi,
                                                   verified))

    async def stream():
        # one block ahead: the inference thread makes block k + 1 while the event loop packs and sends
        # block k (on 2 cores: 6.6k -> see benchmarks/README.md); at most two blocks exist at a time
        out = archives.writer(query.format, n, offset)
        parts = synthetic.blocks(offset, n)
        pending = make(*next(parts))
        finished = False
        try:
            for following in parts:
                images, labels = await pending
                pending = make(*following)
                yield await asyncio.to_thread(out.add, images, labels)  # tar: a PNG per item, off the loop
            yield await asyncio.to_thread(out.add, *(await pending))
            finished = True
            yield out.finish()
        finally:
            if not finished:  # the client went away: the block not yet started is never made
                pending.cancel()
                out.abandon()

    if request.scope.get(HEAD_KEY):  # a HEAD: the headers, without making the set
        return Response(media_type=MEDIA_TYPES[query.format], headers=headers)
    return StreamingResponse(stream(), media_type=MEDIA_TYPES[query.format], headers=headers)
