"""HTTP caching of seeded answers (RFC 9110 8.8.3, RFC 9111): same weights and normalised parameters, same
bytes, so a strong ETag of (service version, weights SHA-256s, parameters) and `immutable`; `private` where
an API key is asked for, so shared caches do not hand keyed answers to anyone."""
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
