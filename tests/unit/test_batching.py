"""`GreedyBatcher`: no wait when idle, merging while busy, outputs routed back in order.

Tests that hold the model in a `GatedModel` disable inline runs (`inline_max_items=0`): a
blocked model on the event loop's own thread would block the test too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from app_production.batching import GreedyBatcher

WAIT_S = 5.0  # upper bound for any wait on the model thread; a healthy test never reaches it


class GatedModel:
    """A run_batch that records each call and blocks its first call until `release` is set.

    While the first call blocks, every later submit queues up: the next call shows what the
    batcher merged. `fail_when(items)` makes a call raise instead of answering.
    """

    def __init__(self, fail_when: Callable[[list[int]], bool] | None = None) -> None:
        self.calls: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()
        self._fail_when = fail_when

    def __call__(self, items: list[int]) -> Sequence[int]:
        self.calls.append(list(items))
        self.threads.add(threading.current_thread().name)
        if len(self.calls) == 1:
            self.started.set()
            if not self.release.wait(WAIT_S):
                raise AssertionError("the test never released the first batch")
        if self._fail_when is not None and self._fail_when(items):
            raise ValueError(f"model failed on {items}")
        return [item * 10 for item in items]

    @property
    def sizes(self) -> list[int]:
        return [len(call) for call in self.calls]


async def _first_batch_running(model: GatedModel) -> None:
    """Wait (without blocking the loop) until the model thread runs the first batch."""
    assert await asyncio.to_thread(model.started.wait, WAIT_S), "the first batch never started"


async def _let_tasks_queue() -> None:
    """Give freshly created tasks a few loop turns: each appends itself to the pending queue."""
    for _ in range(3):
        await asyncio.sleep(0)


def _run(
    model: GatedModel,
    batcher: GreedyBatcher[int, int],
    coro_fn: Callable[[], Coroutine[Any, Any, None]],
) -> None:
    """asyncio.run(coro_fn()), always releasing the model thread and closing the batcher."""
    try:
        asyncio.run(coro_fn())
    finally:
        model.release.set()
        batcher.close()


def test_single_caller_runs_at_once_with_outputs_in_order() -> None:
    calls: list[list[int]] = []

    def run_batch(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [item * 10 for item in items]

    batcher: GreedyBatcher[int, int] = GreedyBatcher(run_batch)
    try:
        started = time.monotonic()
        outputs = asyncio.run(batcher.submit([3, 1, 2]))
        elapsed = time.monotonic() - started
    finally:
        batcher.close()
    assert outputs == [30, 10, 20]
    assert calls == [[3, 1, 2]]
    assert batcher.batches == 1
    assert elapsed < 1.0, f"an idle batcher must not wait for company ({elapsed:.2f} s)"


def test_sequential_callers_each_get_their_own_batch() -> None:
    calls: list[list[int]] = []

    def run_batch(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [item + 1 for item in items]

    batcher: GreedyBatcher[int, int] = GreedyBatcher(run_batch)

    async def main() -> list[list[int]]:
        return [await batcher.submit([i]) for i in range(4)]

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert results == [[1], [2], [3], [4]]
    assert calls == [[0], [1], [2], [3]]
    assert batcher.batches == 4


def test_callers_arriving_during_a_batch_are_merged_and_routed_back() -> None:
    model = GatedModel()
    batcher: GreedyBatcher[int, int] = GreedyBatcher(model, inline_max_items=0)
    # Distinct inputs of distinct lengths: a mix-up between callers or within one shows.
    requests = {k: [k * 100 + j for j in range(k % 3 + 1)] for k in range(1, 9)}
    results: dict[int, list[int]] = {}

    async def main() -> None:
        first = asyncio.create_task(batcher.submit([7]))
        await _first_batch_running(model)
        others = {k: asyncio.create_task(batcher.submit(items)) for k, items in requests.items()}
        await _let_tasks_queue()
        model.release.set()
        assert await asyncio.wait_for(first, WAIT_S) == [70]
        for k, task in others.items():
            results[k] = await asyncio.wait_for(task, WAIT_S)

    _run(model, batcher, main)
    assert model.sizes == [1, sum(len(items) for items in requests.values())]
    assert batcher.batches == 2
    # The merged call holds the callers' items in submission order...
    assert model.calls[1] == [item for items in requests.values() for item in items]
    # ...and each caller gets exactly its own outputs, in its own order.
    assert results == {k: [item * 10 for item in items] for k, items in requests.items()}
    assert len(model.threads) == 1, "one worker thread runs the model"


def test_an_exception_reaches_every_caller_of_the_batch_and_the_batcher_recovers() -> None:
    model = GatedModel(fail_when=lambda items: 666 in items)
    batcher: GreedyBatcher[int, int] = GreedyBatcher(model, inline_max_items=0)
    outcomes: list[object] = []
    after: list[list[int]] = []

    async def main() -> None:
        first = asyncio.create_task(batcher.submit([1]))
        await _first_batch_running(model)
        doomed = [asyncio.create_task(batcher.submit(items)) for items in ([2], [666], [3, 4])]
        await _let_tasks_queue()
        model.release.set()
        assert await asyncio.wait_for(first, WAIT_S) == [10]
        done = await asyncio.wait_for(asyncio.gather(*doomed, return_exceptions=True), WAIT_S)
        outcomes.extend(done)
        # The batcher still works: one caller alone, then two merged ones.
        after.append(await asyncio.wait_for(batcher.submit([5]), WAIT_S))
        after.extend(
            await asyncio.wait_for(
                asyncio.gather(batcher.submit([6]), batcher.submit([7, 8])), WAIT_S
            )
        )

    _run(model, batcher, main)
    assert model.calls[:2] == [[1], [2, 666, 3, 4]]
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert isinstance(outcome, ValueError), outcome
        assert "666" in str(outcome)
    assert after == [[50], [60], [70, 80]]
    assert batcher.batches == len(model.calls)  # failed calls are counted too


def test_max_items_splits_queued_callers_into_several_calls() -> None:
    model = GatedModel()
    batcher: GreedyBatcher[int, int] = GreedyBatcher(model, max_items=3, inline_max_items=0)
    queued = [[1, 2], [3, 4], [5], [6, 7, 8], [9, 10, 11, 12, 13]]
    results: list[list[int]] = []

    async def main() -> None:
        first = asyncio.create_task(batcher.submit([0]))
        await _first_batch_running(model)
        tasks = [asyncio.create_task(batcher.submit(items)) for items in queued]
        await _let_tasks_queue()
        model.release.set()
        assert await asyncio.wait_for(first, WAIT_S) == [0]
        results.extend(await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S))

    _run(model, batcher, main)
    # [1,2] alone (adding [3,4] would make 4 > 3), then [3,4]+[5], then [6,7,8]; a caller
    # over the limit is never split: it runs whole, alone.
    assert model.calls == [[0], [1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11, 12, 13]]
    assert all(size <= 3 for size in model.sizes[:-1])
    assert batcher.batches == 5
    assert results == [[item * 10 for item in items] for items in queued]


def test_a_cancelled_caller_does_not_break_the_others() -> None:
    model = GatedModel()
    batcher: GreedyBatcher[int, int] = GreedyBatcher(model, inline_max_items=0)
    results: dict[str, object] = {}

    async def main() -> None:
        first = asyncio.create_task(batcher.submit([1]))  # cancelled while the model runs it
        await _first_batch_running(model)
        a = asyncio.create_task(batcher.submit([2, 3]))
        b = asyncio.create_task(batcher.submit([4, 5]))  # cancelled while queued
        c = asyncio.create_task(batcher.submit([6]))
        await _let_tasks_queue()
        first.cancel()
        b.cancel()
        await _let_tasks_queue()
        model.release.set()
        for name, task in {"first": first, "a": a, "b": b, "c": c}.items():
            try:
                results[name] = await asyncio.wait_for(task, WAIT_S)
            except asyncio.CancelledError:
                results[name] = "cancelled"
        results["later"] = await asyncio.wait_for(batcher.submit([9]), WAIT_S)

    _run(model, batcher, main)
    assert results == {
        "first": "cancelled",
        "a": [20, 30],
        "b": "cancelled",
        "c": [60],
        "later": [90],
    }
    # The cancelled caller's items were already queued: the others' offsets must skip them.
    assert model.calls == [[1], [2, 3, 4, 5, 6], [9]]


@pytest.mark.parametrize("callers", [2, 50])
def test_callers_submitted_in_one_loop_turn_share_one_call(callers: int) -> None:
    calls: list[list[int]] = []

    def run_batch(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [item * 10 for item in items]

    batcher: GreedyBatcher[int, int] = GreedyBatcher(run_batch)
    inputs = [list(range(k * 10, k * 10 + k % 4 + 1)) for k in range(callers)]

    async def main() -> list[list[int]]:
        return await asyncio.wait_for(asyncio.gather(*map(batcher.submit, inputs)), WAIT_S)

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert results == [[item * 10 for item in items] for items in inputs]
    assert calls == [[item for items in inputs for item in items]]
    assert batcher.batches == 1


def _recording(calls: list[tuple[list[int], str]]) -> Callable[[list[int]], list[int]]:
    def run_batch(items: list[int]) -> list[int]:
        calls.append((list(items), threading.current_thread().name))
        return [item * 10 for item in items]

    return run_batch


def test_a_lone_small_call_runs_inline_and_a_large_one_in_the_model_thread() -> None:
    calls: list[tuple[list[int], str]] = []
    batcher: GreedyBatcher[int, int] = GreedyBatcher(_recording(calls), inline_max_items=2)

    async def main() -> tuple[list[int], list[int], str]:
        loop_thread = threading.current_thread().name
        return await batcher.submit([1, 2]), await batcher.submit([3, 4, 5]), loop_thread

    try:
        small, large, loop_thread = asyncio.run(main())
    finally:
        batcher.close()
    assert (small, large) == ([10, 20], [30, 40, 50])
    assert calls[0] == ([1, 2], loop_thread)  # no hand-off at concurrency 1
    assert calls[1][0] == [3, 4, 5] and calls[1][1].startswith("model")
    assert (batcher.inline, batcher.batches, batcher.items) == (1, 2, 5)


@pytest.mark.parametrize(("gather_rounds", "expected_calls"), [(32, 1), (0, 6)])
def test_callers_arriving_over_a_few_loop_turns_join_the_first_batch(
    gather_rounds: int, expected_calls: int
) -> None:
    """Requests parsed one loop turn apart (as a server reads them) share one call; without
    gathering each would run alone (and inline, blocking the loop for the next one)."""
    calls: list[tuple[list[int], str]] = []
    batcher: GreedyBatcher[int, int] = GreedyBatcher(_recording(calls), gather_rounds=gather_rounds)

    async def arrive_later(k: int) -> list[int]:
        for _ in range(k):
            await asyncio.sleep(0)
        return await batcher.submit([k])

    async def main() -> list[list[int]]:
        return await asyncio.wait_for(asyncio.gather(*map(arrive_later, range(6))), WAIT_S)

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert results == [[k * 10] for k in range(6)]
    assert len(calls) == expected_calls, calls
    if gather_rounds:
        assert calls[0][0] == list(range(6))
        assert calls[0][1].startswith("model"), "a merged call must not block the event loop"


def _split_closed_loop(max_hold_s: float, rounds: int = 12) -> list[int]:
    """32 closed-loop callers (each sends again 1 ms after its answer) started as two groups,
    18 then 14 while the first group's batch runs: the split that halved the service's
    throughput. The model costs 60 ms a call whatever its size (a pipeline's fixed cost)."""
    sizes: list[int] = []

    def run_batch(items: list[int]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.06)
        return items

    batcher: GreedyBatcher[int, int] = GreedyBatcher(
        run_batch, inline_max_items=0, max_hold_s=max_hold_s
    )

    async def caller(k: int) -> None:
        for _ in range(rounds):
            await batcher.submit([k])
            await asyncio.sleep(0.001)  # the network and the client's own work

    async def main() -> None:
        first = [asyncio.create_task(caller(k)) for k in range(18)]
        while not sizes:
            await asyncio.sleep(0.001)
        second = [asyncio.create_task(caller(k)) for k in range(18, 32)]
        await asyncio.wait_for(asyncio.gather(*first, *second), 30)

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    return sizes


def test_callers_split_into_two_groups_are_merged_again_by_the_hold() -> None:
    sizes = _split_closed_loop(max_hold_s=0.05)
    assert sizes[0] == 18, f"the scenario must start split: {sizes}"
    # The 14 late callers wait for the 18 to come back: one batch of 32 from then on (the
    # last call of the late group is alone: the others had finished their rounds).
    assert sizes[-7:-1] == [32] * 6, f"the two groups were never merged again: {sizes}"


def test_without_the_hold_the_split_persists() -> None:
    """The control: what the hold fixes (so the test above cannot pass by accident)."""
    sizes = _split_closed_loop(max_hold_s=0.0)
    assert sizes[:2] == [18, 14], f"the scenario must start split: {sizes}"
    assert 32 not in sizes[2:-2], f"merged without the hold: the scenario proves nothing {sizes}"


def test_a_hold_ends_after_its_budget_and_then_forgets_the_burst() -> None:
    """8 in flight, then lone callers: the first one's call starts after max_hold_s (shorter
    here than half a recent model call: the cap applies), not at once and not never; the
    hold that ran out lowers the target, so the next lone call starts at once."""
    started: list[float] = []

    def run_batch(items: list[int]) -> list[int]:
        started.append(time.monotonic())
        time.sleep(0.5)
        return [item * 10 for item in items]

    batcher: GreedyBatcher[int, int] = GreedyBatcher(run_batch, inline_max_items=0, max_hold_s=0.2)
    submitted: list[float] = []
    sizes: list[int] = []

    async def main() -> None:
        results = await asyncio.gather(*(batcher.submit([k]) for k in range(8)))
        sizes.append(len(results))
        for k in (9, 10):
            submitted.append(time.monotonic())
            assert await asyncio.wait_for(batcher.submit([k]), WAIT_S) == [k * 10]

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    assert (sizes, batcher.batches) == ([8], 3)
    first, second = started[1] - submitted[0], started[2] - submitted[1]
    assert 0.18 <= first < 1.0, f"the first lone call waited {first:.3f} s for company"
    assert second < 0.1, f"the second lone call waited {second:.3f} s: the burst is over"
