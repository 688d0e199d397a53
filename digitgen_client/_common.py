"""What the sync and async clients share: request parameters, response parsing, errors, retry policy."""
from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import httpx
import numpy as np
from tenacity import retry_if_exception, stop_after_attempt, wait_exponential_jitter

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_PAGE = 10_000  # items per /dataset request when a set is fetched in pages
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class DigitgenError(RuntimeError):
    """The service answered with an error: `status`, its stable `code` and `detail` (README: Errors)."""

    def __init__(self, status: int, code: str, detail: str, errors: list | None = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail, self.errors = status, code, detail, errors or []

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUSES


def raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        raise DigitgenError(response.status_code, body.get("code", "unknown"), body.get("detail", ""),
                            body.get("errors"))
    except ValueError:  # not JSON: something in front of the service (a proxy) answered
        raise DigitgenError(response.status_code, "http_error", response.text[:200]) from None


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the connection failed or dropped, or the service was busy or restarting."""
    if isinstance(exc, DigitgenError):
        return exc.retryable
    return isinstance(exc, (httpx.TransportError, httpx.DecodingError))


def retry_policy(retries: int) -> dict:
    """tenacity arguments: up to `retries` more tries with exponential back-off (0.2 s doubling, at
    most 10 s between tries, plus up to 1 s of jitter) for transient failures only; the last error
    is re-raised."""
    return {"retry": retry_if_exception(is_transient), "stop": stop_after_attempt(retries + 1),
            "wait": wait_exponential_jitter(multiplier=0.2, max=10), "reraise": True}


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def digits_param(digits: Sequence[int] | str | None) -> str | None:
    if digits is None or isinstance(digits, str):
        return digits
    return ",".join(str(int(d)) for d in digits)


def dataset_params(model: str | None, n: int, seed: int | None, offset: int, digits, fmt: str,
                   verified: bool = False) -> dict:
    """/dataset's query; model None leaves the choice to the service (its default dataset model)."""
    params = {"n": n, "offset": offset, "format": fmt}
    if model is not None:
        params["model"] = model
    if seed is not None:
        params["seed"] = seed
    if digits is not None:
        params["digits"] = digits_param(digits)
    if verified:
        params["verified"] = "true"
    return params


def sample_params(model: str, n: int, seed: int | None, digit: int | None) -> dict:
    params = {"model": model, "n": n, "format": "npy"}
    if seed is not None:
        params["seed"] = seed
    if digit is not None:
        params["digit"] = digit
    return params


def parse_npz(content: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(content), allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise httpx.DecodingError(f"expected {n} images and labels, got {images.shape} and {labels.shape}")
    return images, labels


def parse_npy(content: bytes) -> np.ndarray:
    return np.load(io.BytesIO(content), allow_pickle=False)


def pages(n: int, offset: int, page: int) -> Iterator[tuple[int, int]]:
    """(offset, size) of each page that together cover [offset, offset + n)."""
    if n < 1 or page < 1:
        raise ValueError("n and the page size must be at least 1")
    for start in range(offset, offset + n, page):
        yield start, min(page, offset + n - start)
