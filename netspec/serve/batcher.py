"""Concurrent requests batched into one forward pass.

Each input of a request is one item with its future. A single worker task takes the waiting
items, up to `max_batch`, once the oldest has waited `wait_ms` (or at once when `max_batch` are
there), stacks them and runs the network in the one model thread (`run_in_executor` on a
single-thread executor), so the event loop keeps accepting requests meanwhile; then it resolves
each item's future with its row of the output. The model thread also runs the steps of text
generation (`call`), so the network is never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch

T = TypeVar("T")


@dataclass
class Stats:
    requests: int = 0  # requests answered through the batcher
    items: int = 0  # inputs in them
    forward_passes: int = 0
    largest_batch: int = 0
    batched_passes: int = 0  # forward passes of more than one item

    def summary(self) -> dict[str, Any]:
        mean = self.items / self.forward_passes if self.forward_passes else 0.0
        return {**self.__dict__, "mean_batch": round(mean, 3)}


@dataclass
class _Item:
    x: torch.Tensor
    future: asyncio.Future[torch.Tensor]
    arrived: float


class Batcher:
    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], max_batch: int, wait_ms: float) -> None:
        self.forward = forward
        self.max_batch = max_batch
        self.wait = wait_ms / 1000
        self.stats = Stats()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netspec-model")
        self._pending: collections.deque[_Item] = collections.deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def predict(self, items: list[torch.Tensor]) -> list[torch.Tensor]:
        """The output rows of a request's inputs, in order."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        batch = [_Item(x, loop.create_future(), now) for x in items]
        self._pending.extend(batch)
        self._arrived.set()
        rows = await asyncio.gather(*(i.future for i in batch))
        self.stats.requests += 1
        self.stats.items += len(items)
        return list(rows)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in the model thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = self._pending[0].arrived + self.wait
            while len(self._pending) < self.max_batch and (left := deadline - loop.time()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
            n = min(self.max_batch, len(self._pending))
            await self._run([self._pending.popleft() for _ in range(n)])

    async def _run(self, batch: list[_Item]) -> None:
        live = [i for i in batch if not i.future.done()]  # a request cancelled meanwhile needs no answer
        if not live:
            return
        try:
            out = await self.call(self.forward, torch.stack([i.x for i in live]))
        except Exception as e:  # the network failed on this batch: each request gets the error (a 500)
            for i in live:
                if not i.future.done():
                    i.future.set_exception(e)
            return
        self.stats.forward_passes += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        self.stats.batched_passes += len(live) > 1
        for i, row in zip(live, out):
            if not i.future.done():
                i.future.set_result(row)
