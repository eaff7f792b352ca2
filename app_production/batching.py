"""A greedy micro-batcher: concurrent callers share one pipeline call, with no batching window.

When the model is idle a request runs at once (no batching wait at concurrency 1); requests
that arrive while a batch runs are merged into the next one. Nothing is shed: under load the
batches grow instead of answering 503 (BentoML's stock batcher sheds load against a latency
target, and keeps a learned wait long after a burst).

Two measured refinements (`kit bench`, see the README):

- *gathering*: before each batch the batcher yields to the event loop for as long as new
  callers keep arriving (at most `gather_rounds` loop turns, each a few microseconds), so the
  requests whose bytes are already in the socket buffers join this batch instead of the next.
  Without it, a busy service ran many small batches, each paying the pipeline's fixed cost.
- *inline runs*: a lone small call (nothing else queued after gathering) runs on the event
  loop's thread; the hand-off to the model thread costs ~0.4 ms, a tenth of a one-row
  prediction. Anything larger or concurrent runs in the one model thread, so the event loop
  keeps accepting and validating requests meanwhile.
- *holding for the callers in flight*: a batch smaller than the number of items that were in
  flight (queued or running) during the last second waits, for at most half of a recent
  model call (never more than `max_hold_s`), until that many are queued. Without it 32
  steady callers split into two alternating groups (18 + 14, 11 + 21: each arrives while
  the other's batch runs) and stay split, paying the pipeline's fixed cost twice per round:
  `kit bench` saw the same service at 1,500 or at 2,400 requests/s, depending on when a split
  happened. A lone caller never waits (nothing else was in flight); after a burst, the
  first hold that runs out sets the target to what is queued.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


PEAK_WINDOW_S = 1.0  # how long a peak of items in flight sets the hold's target


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class GreedyBatcher(Generic[In, Out]):
    def __init__(
        self,
        run_batch: Callable[[list[In]], Sequence[Out]],
        max_items: int = 4096,
        gather_rounds: int = 32,
        inline_max_items: int = 16,
        max_hold_s: float = 0.005,
    ) -> None:
        self._run_batch = run_batch
        self._max_items = max_items
        self._gather_rounds = gather_rounds
        self._inline_max_items = inline_max_items
        self._max_hold_s = max_hold_s
        self._pending_items = 0  # items queued in _pending
        self._running_items = 0  # items of the batch the model runs now
        self._peaks = [0, 0]  # most items in flight: in this PEAK_WINDOW_S, and the one before
        self._window_ends = 0.0
        self._run_s = 0.0  # a recent model call's time (moving average)
        self._enough: asyncio.Future[None] | None = None  # set when a hold's target is queued
        self._hold_target = 0
        self._pending: list[tuple[list[In], asyncio.Future[list[Out]]]] = []
        self._draining = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # model calls made (for tests and metrics)
        self.items = 0  # items predicted in them
        self.inline = 0  # calls run on the event loop's thread

    async def submit(self, items: list[In]) -> list[Out]:
        """Queue `items` and wait for their outputs, in order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Out]] = loop.create_future()
        self._pending.append((items, future))
        self._pending_items += len(items)
        self._note_in_flight()
        if self._enough is not None and self._pending_items >= self._hold_target:
            _settle(self._enough)
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())  # kept: tasks are weakly referenced
        return await future

    def _note_in_flight(self) -> None:
        now = time.monotonic()
        if now >= self._window_ends:  # a new window: the last one becomes "the one before"
            fresh = now >= self._window_ends + PEAK_WINDOW_S
            self._peaks = [0, 0 if fresh else self._peaks[0]]
            self._window_ends = now + PEAK_WINDOW_S
        self._peaks[0] = max(self._peaks[0], self._pending_items + self._running_items)

    async def _hold(self) -> None:
        """Wait (at most half a recent model call, capped) until as many items are queued as
        were in flight recently; at once if they already are, or nothing else was. A hold that
        runs out forgets the peak: after a burst only the first lone call waits."""
        target = min(max(self._peaks), self._max_items)
        budget = min(self._run_s / 2, self._max_hold_s)
        if self._pending_items >= target or budget <= 0:
            return
        loop = asyncio.get_running_loop()
        self._enough, self._hold_target = loop.create_future(), target
        timer = loop.call_later(budget, _settle, self._enough)
        try:
            await self._enough
        finally:
            timer.cancel()
            self._enough = None
        if self._pending_items < target:  # they did not come back: what is queued is the load
            self._peaks = [self._pending_items, self._pending_items]

    async def _gather(self) -> None:
        for _ in range(self._gather_rounds):
            before = len(self._pending)
            await asyncio.sleep(0)
            if len(self._pending) == before:
                return

    def _take(self) -> list[tuple[list[In], asyncio.Future[list[Out]]]]:
        taken: list[tuple[list[In], asyncio.Future[list[Out]]]] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self._max_items):
            items, future = self._pending.pop(0)
            taken.append((items, future))
            count += len(items)
        self._pending_items -= count
        self._running_items = count
        return taken

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await self._gather()
                await self._hold()
                taken = self._take()
                flat = [item for items, _ in taken for item in items]
                alone = len(taken) == 1 and not self._pending
                began = time.perf_counter()
                try:
                    if alone and len(flat) <= self._inline_max_items:
                        self.inline += 1
                        outputs = self._run_batch(flat)
                    else:
                        outputs = await loop.run_in_executor(self._executor, self._run_batch, flat)
                except Exception as exc:  # every caller of the batch learns of it
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                finally:
                    self.batches += 1
                    self.items += len(flat)
                    self._running_items = 0
                    ran = time.perf_counter() - began
                    self._run_s = 0.8 * self._run_s + 0.2 * ran if self._run_s else ran
                start = 0
                for items, future in taken:
                    if not future.done():  # a caller may have been cancelled meanwhile
                        future.set_result(list(outputs[start : start + len(items)]))
                    start += len(items)
        finally:
            self._draining = False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
