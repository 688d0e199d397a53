"""HTTP caching of seeded answers (RFC 9110 8.8.3, RFC 9111).

Same weights + same normalised parameters = the same bytes, so a seeded answer (/sample, /dataset,
/interpolate with both seeds) never changes: it gets a strong ETag and may be kept forever.

The ETag hashes everything the bytes depend on: the service version (its encoders), the SHA-256 of
every weights file involved (the model's; the classifier's too where it picks or labels the
images), and the parameters after defaults and normalisation, so `?seed=1` and `?seed=1&n=1` are
one entry, and new weights or a new release change every tag. `If-None-Match` with a matching tag
is answered 304 before any work. An unseeded answer is random on purpose: `no-store`.

`public` lets proxies and CDNs share the entries. Where the service asks for an API key the
answers are `private` instead: a shared cache would otherwise hand keyed answers to anyone.
"""
from __future__ import annotations

import hashlib

from starlette.responses import Response

from service import __version__

FOREVER = 31536000  # one year, the customary "never expires"
NO_STORE = {"Cache-Control": "no-store"}


def etag(route: str, weights: tuple[str, ...], params: dict) -> str:
    text = "|".join([__version__, route, *weights, *(f"{k}={params[k]}" for k in sorted(params))])
    return '"' + hashlib.blake2b(text.encode(), digest_size=16).hexdigest() + '"'


def cache_headers(tag: str, private: bool) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": f"{'private' if private else 'public'}, max-age={FOREVER}, immutable"}


def matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 13.1.2: a list of tags or `*`; weak comparison (a W/ prefix is ignored)."""
    if not if_none_match:
        return False
    candidates = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in candidates or tag in candidates


def not_modified(headers: dict[str, str]) -> Response:
    return Response(status_code=304, headers=headers)


def seeded_answer(headers: dict[str, str], route: str, weights: tuple[str, ...], params: dict, *, private: bool,
                  if_none_match: str | None) -> Response | None:
    """Adds the caching headers of a seeded answer to `headers`; the 304 to send instead, if the
    client already has these bytes."""
    tag = etag(route, weights, params)
    headers.update(cache_headers(tag, private))
    return not_modified(headers) if matches(if_none_match, tag) else None
