"""Client and AsyncClient: digitgen's HTTP API as NumPy arrays, for services that train on its digits.

    from digitgen_client import Client
    with Client("http://127.0.0.1:8000") as client:
        images, labels = client.dataset(60_000, seed=0)    # uint8 (60000, 28, 28), uint8 (60000,)

A large set is fetched in pages (`offset`/`n` slices of one fixed sequence), each retried with
back-off after a dropped connection or a 503, so a restart of the service in the middle of a
download neither duplicates nor loses an item. The seed is pinned by the first page (a random one
when none is given) and is in `client.last_seed`.
"""
from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator, Sequence

import httpx
import numpy as np
from tenacity import AsyncRetrying, Retrying

from digitgen_client._common import (DEFAULT_PAGE, DEFAULT_URL, auth_headers, dataset_params, pages, parse_npy,
                                     parse_npz, raise_for_error, retry_policy, sample_params)

Digits = Sequence[int] | str | None


def _pin(seed: int | None) -> int:
    # one seed for every page: the service would draw a new random one per request
    return secrets.randbits(31) if seed is None else seed


class Client:
    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 120.0,
                 retries: int = 5, transport: httpx.BaseTransport | None = None):
        self.retries = retries
        self.last_seed: int | None = None
        self._http = httpx.Client(base_url=base_url, headers=auth_headers(api_key), timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict) -> httpx.Response:
        for attempt in Retrying(**retry_policy(self.retries)):
            with attempt:
                response = self._http.get(path, params=params)
                raise_for_error(response)
        return response

    def models(self) -> list[dict]:
        return self._get("/models", {}).json()["models"]

    def sample(self, n: int = 1, model: str = "gan", seed: int | None = None, digit: int | None = None) -> np.ndarray:
        """uint8 images (n, 28, 28), as /sample?format=npy gives them."""
        response = self._get("/sample", sample_params(model, n, seed, digit))
        self.last_seed = int(response.headers["x-seed"])
        return parse_npy(response.content)

    def fetch_page(self, n: int, model: str | None = None, seed: int = 0, digits: Digits = None, offset: int = 0,
                   format: str = "npz", *, verified: bool = False) -> bytes:
        """One /dataset answer as raw bytes (npz or tar), retried as a whole until complete."""
        return self._get("/dataset", dataset_params(model, n, seed, offset, digits, format, verified)).content

    def iter_dataset(self, n: int, model: str | None = None, seed: int | None = None, digits: Digits = None,
                     offset: int = 0, batch: int = DEFAULT_PAGE, *,
                     verified: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(images, labels) pages of at most `batch` items covering [offset, offset + n), in order.
        verified: every label confirmed by the model's classifier (/dataset?verified=true)."""
        self.last_seed = seed = _pin(seed)
        for start, size in pages(n, offset, batch):
            yield parse_npz(self.fetch_page(size, model, seed, digits, start, verified=verified), size)

    def dataset(self, n: int, model: str | None = None, seed: int | None = None, digits: Digits = None, offset: int = 0,
                batch: int = DEFAULT_PAGE, *, verified: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (n, 28, 28) and uint8 labels (n,): items [offset, offset + n) of the sequence."""
        parts = list(self.iter_dataset(n, model, seed, digits, offset, batch, verified=verified))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def torch_dataset(self, n: int, model: str | None = None, seed: int | None = None, digits: Digits = None,
                      offset: int = 0, batch: int = DEFAULT_PAGE, transform=None, *, verified: bool = False):
        """A torch Dataset of (image float (1, 28, 28) in [0, 1], label int64), fetched now (needs torch)."""
        from digitgen_client.torch import ArrayDataset
        return ArrayDataset(*self.dataset(n, model, seed, digits, offset, batch, verified=verified),
                            transform=transform)


class AsyncClient:
    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 120.0,
                 retries: int = 5, transport: httpx.AsyncBaseTransport | None = None):
        self.retries = retries
        self.last_seed: int | None = None
        self._http = httpx.AsyncClient(base_url=base_url, headers=auth_headers(api_key), timeout=timeout,
                                       transport=transport)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, params: dict) -> httpx.Response:
        async for attempt in AsyncRetrying(**retry_policy(self.retries)):
            with attempt:
                response = await self._http.get(path, params=params)
                raise_for_error(response)
        return response

    async def models(self) -> list[dict]:
        return (await self._get("/models", {})).json()["models"]

    async def sample(self, n: int = 1, model: str = "gan", seed: int | None = None,
                     digit: int | None = None) -> np.ndarray:
        response = await self._get("/sample", sample_params(model, n, seed, digit))
        self.last_seed = int(response.headers["x-seed"])
        return parse_npy(response.content)

    async def fetch_page(self, n: int, model: str | None = None, seed: int = 0, digits: Digits = None, offset: int = 0,
                         format: str = "npz", *, verified: bool = False) -> bytes:
        params = dataset_params(model, n, seed, offset, digits, format, verified)
        return (await self._get("/dataset", params)).content

    async def iter_dataset(self, n: int, model: str | None = None, seed: int | None = None, digits: Digits = None,
                           offset: int = 0, batch: int = DEFAULT_PAGE, *,
                           verified: bool = False) -> AsyncIterator[tuple[np.ndarray, np.ndarray]]:
        self.last_seed = seed = _pin(seed)
        for start, size in pages(n, offset, batch):
            yield parse_npz(await self.fetch_page(size, model, seed, digits, start, verified=verified), size)

    async def dataset(self, n: int, model: str | None = None, seed: int | None = None, digits: Digits = None,
                      offset: int = 0, batch: int = DEFAULT_PAGE, *,
                      verified: bool = False) -> tuple[np.ndarray, np.ndarray]:
        parts = [page async for page in self.iter_dataset(n, model, seed, digits, offset, batch, verified=verified)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    async def torch_dataset(self, n: int, model: str | None = None, seed: int | None = None, digits: Digits = None,
                            offset: int = 0, batch: int = DEFAULT_PAGE, transform=None, *, verified: bool = False):
        from digitgen_client.torch import ArrayDataset
        return ArrayDataset(*(await self.dataset(n, model, seed, digits, offset, batch, verified=verified)),
                            transform=transform)
