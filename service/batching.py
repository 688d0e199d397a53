"""Dynamic batching: concurrent requests for one model share a forward pass, run on the event loop when it
fits the inline budget, else in the inference thread (ARCHITECTURE.md). Serving modules are in eval mode
and only read their parameters, so concurrent forward passes of one model are safe."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import suppress

import torch

BatchFn = Callable[[torch.Tensor], torch.Tensor]
Finish = Callable[[torch.Tensor], object]
_Item = tuple[torch.Tensor, "Finish | None", asyncio.Future]


class Batcher:
    def __init__(self, fn: BatchFn, executor: Executor, max_batch_size: int, wait_ms: float,
                 on_batch: Callable[[int], None] | None = None, inline_rows: int = 0):
        self._fn = fn
        self._inline_rows = inline_rows
        self._executor = executor
        self._max = max_batch_size
        self._wait = wait_ms / 1000.0
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, latents: torch.Tensor, finish: Finish | None = None):
        """latents: (n, D) -> what fn returns for those rows, passed through `finish` when given."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((latents, finish, future))
        return await future

    async def _gather(self) -> list[_Item]:
        items = [await self._queue.get()]
        size = items[0][0].shape[0]
        deadline = asyncio.get_running_loop().time() + self._wait
        while size < self._max:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if size + item[0].shape[0] > self._max:
                await self._queue.put(item)  # goes to the next batch (requeued at the back)
                break
            items.append(item)
            size += item[0].shape[0]
        return items

    def _work(self, latents: torch.Tensor, items: list[_Item]) -> list[tuple[bool, object]]:
        """One forward pass, then each request's rows, finished. A failing finish fails its own
        request only: (ok, result or exception) per item."""
        output = self._fn(latents)
        results, start = [], 0
        for z, finish, _ in items:
            rows = output[start:start + z.shape[0]]
            start += z.shape[0]
            if finish is None:
                results.append((True, rows))
                continue
            try:
                results.append((True, finish(rows)))
            except Exception as exc:
                results.append((False, exc))
        return results

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            items = [item for item in items if not item[2].cancelled()]  # client went away
            if not items:
                continue
            latents = torch.cat([z for z, _, _ in items]) if len(items) > 1 else items[0][0]
            try:
                if latents.shape[0] <= self._inline_rows:
                    results = self._work(latents, items)
                else:
                    results = await loop.run_in_executor(self._executor, self._work, latents, items)
            except Exception as exc:  # the forward failed: every waiter learns it, the loop goes on
                for _, _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(latents.shape[0])
            for (_, _, future), (ok, result) in zip(items, results):
                if future.done():
                    continue
                if ok:
                    future.set_result(result)
                else:
                    future.set_exception(result)
