"""Dynamic batching: concurrent requests for one model share a forward pass.

Each request brings its own latents (drawn from its own seeded generator), so what it gets
back does not depend on which other requests shared the batch. The forward pass runs in the
registry's single inference thread, so the event loop keeps accepting and encoding meanwhile;
requests that arrive during a forward pass form the next batch.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

import torch

BatchFn = Callable[[torch.Tensor], torch.Tensor]


class Batcher:
    def __init__(self, fn: BatchFn, executor: Executor, max_batch_size: int, wait_ms: float,
                 on_batch: Callable[[int], None] | None = None):
        self._fn = fn
        self._executor = executor
        self._max = max_batch_size
        self._wait = wait_ms / 1000.0
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[torch.Tensor, asyncio.Future]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def submit(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (n, D) -> whatever fn returns for those rows."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((latents, future))
        return await future

    async def _gather(self) -> list[tuple[torch.Tensor, asyncio.Future]]:
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

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            items = [(z, f) for z, f in items if not f.cancelled()]  # client went away
            if not items:
                continue
            latents = torch.cat([z for z, _ in items]) if len(items) > 1 else items[0][0]
            try:
                output = await loop.run_in_executor(self._executor, self._fn, latents)
            except Exception as exc:  # the forward failed: every waiter learns it, the loop goes on
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(latents.shape[0])
            start = 0
            for z, future in items:
                end = start + z.shape[0]
                if not future.done():
                    future.set_result(output[start:end])
                start = end
