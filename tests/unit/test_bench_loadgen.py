"""The load generator's closed loop: what it counts, what it times, what it leaves out."""

from __future__ import annotations

import asyncio
import threading
import time

from scripts.bench.loadgen import Outcome, run_async, run_threads


def test_async_loop_times_each_call_and_counts_errors_by_kind() -> None:
    calls = 0

    async def call() -> Outcome:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.002)
        if calls == 1:
            await asyncio.sleep(0.3)  # a slow first request: primed, never counted
        if calls % 5 == 0:
            return "HTTP 503"
        if calls % 7 == 0:
            raise ConnectionResetError("peer went away")
        return None

    tally = asyncio.run(run_async(call, concurrency=4, warmup=0.05, duration=0.3))
    assert tally.calls == calls  # every call, priming and warm-up included
    counted = len(tally.latencies_ms) + sum(tally.errors.values())
    assert 0 < counted < calls
    assert set(tally.errors) == {"HTTP 503", "ConnectionResetError"}
    assert all(1.5 < ms < 250 for ms in tally.latencies_ms), "the slow first call was counted"
    assert 0.3 <= tally.seconds < 0.6


def test_thread_loop_runs_one_client_per_thread_and_primes_each() -> None:
    clients: list[str] = []
    lock = threading.Lock()

    def make_call():  # type: ignore[no-untyped-def]
        with lock:
            clients.append(threading.current_thread().name)
        first = [True]

        def call() -> Outcome:
            if first[0]:
                first[0] = False
                time.sleep(0.2)  # primed, not counted
            time.sleep(0.003)
            return None

        return call

    tally = run_threads(make_call, concurrency=3, warmup=0.05, duration=0.3)
    assert len(set(clients)) == 3
    assert tally.latencies_ms and max(tally.latencies_ms) < 150
    assert not tally.errors
    assert tally.calls > len(tally.latencies_ms)  # primes and warm-up are in calls only
