"""A greedy micro-batcher: concurrent callers share one pipeline call, with no timers.

When the model is idle a request runs at once (no batching wait at concurrency 1); requests
that arrive while a batch runs are merged into the next one. Nothing is shed: under load the
batches grow instead of answering 503 (BentoML's stock batcher sheds load against a latency
target, and keeps a learned wait long after a burst). One worker thread runs the model, so
the event loop stays free to accept and validate requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class GreedyBatcher(Generic[In, Out]):
    def __init__(
        self, run_batch: Callable[[list[In]], Sequence[Out]], max_items: int = 4096
    ) -> None:
        self._run_batch = run_batch
        self._max_items = max_items
        self._pending: list[tuple[list[In], asyncio.Future[list[Out]]]] = []
        self._draining = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # how many model calls were made (for tests and metrics)

    async def submit(self, items: list[In]) -> list[Out]:
        """Queue `items` and wait for their outputs, in order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Out]] = loop.create_future()
        self._pending.append((items, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())  # kept: tasks are weakly referenced
        return await future

    def _take(self) -> list[tuple[list[In], asyncio.Future[list[Out]]]]:
        taken: list[tuple[list[In], asyncio.Future[list[Out]]]] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self._max_items):
            items, future = self._pending.pop(0)
            taken.append((items, future))
            count += len(items)
        return taken

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                taken = self._take()
                flat = [item for items, _ in taken for item in items]
                try:
                    outputs = await loop.run_in_executor(self._executor, self._run_batch, flat)
                except Exception as exc:  # every caller of the batch learns of it
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                finally:
                    self.batches += 1
                start = 0
                for items, future in taken:
                    if not future.done():  # a caller may have been cancelled meanwhile
                        future.set_result(list(outputs[start : start + len(items)]))
                    start += len(items)
        finally:
            self._draining = False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
