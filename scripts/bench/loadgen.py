"""The load generator of `kit bench`: a separate process that times every request itself.

Closed loop: `concurrency` callers each send one single-record request, wait for the whole
answer, and send the next, until the duration ends. Each request is timed here, from send to
the last byte (no synthetic samples: wrk's percentiles add coordinated-omission corrections
that are not real latencies). A warm-up period comes first and is not counted; requests still
running at the end are awaited and counted. Anything but a 2xx, or a transport error, is an
error.

Kinds (``--kind``):
  http    POST URL/predict {"records": [record]}   (the BentoML service, the FastAPI baseline)
  gradio  the Gradio app's API: POST /gradio_api/call/predict, then its event stream
  remote  RemotePredictor.predict([record]), one client per thread (what the UI pays)
  local   LocalPredictor.predict([record]) in this process (the floor: no server at all)

Protocol: first one line {"import_s": seconds to import scikit-learn and pandas}; then one
JSON run spec per line on stdin ({"kind", "target", "concurrency", "warmup",
"duration"}), one JSON result per line on stdout ({"latencies_ms": [...], "errors": {...},
"seconds": ...}). One process serves the whole bench, so its imports are paid once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Outcome = str | None  # None: success; otherwise what went wrong ("HTTP 503", "ConnectionError")
AsyncCall = Callable[[], Awaitable[Outcome]]
SyncCall = Callable[[], Outcome]


class Tally:
    """Latencies of successful calls and errors by kind in the measured window; all calls."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.calls = 0  # every call, warm-up included (server CPU is divided by it)
        self.seconds = 0.0  # the measured window, until the last counted call ended
        self.cpu_s = 0.0  # this process's CPU time over all calls (the client's cost)
        self._lock = threading.Lock()

    def add(self, began: float, outcome: Outcome, counted: bool) -> None:
        elapsed_ms = (time.perf_counter() - began) * 1000
        with self._lock:
            self.calls += 1
            if not counted:
                return
            if outcome is None:
                self.latencies_ms.append(elapsed_ms)
            else:
                self.errors[outcome] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "latencies_ms": self.latencies_ms,
            "errors": dict(self.errors),
            "seconds": self.seconds,
            "calls": self.calls,
            "client_cpu_s": self.cpu_s,
        }


def _status(code: int) -> Outcome:
    return None if 200 <= code < 300 else f"HTTP {code}"


async def run_async(call: AsyncCall, concurrency: int, warmup: float, duration: float) -> Tally:
    """`concurrency` callers in a closed loop. Each first makes one uncounted call (a cold
    first request must not eat the window), then warm-up, then the measured window."""
    tally = Tally()
    cpu_before = time.process_time()

    async def attempt() -> Outcome:
        try:
            return await call()
        except Exception as exc:  # a transport error is a failed request, not a crash
            return type(exc).__name__

    async def prime() -> None:
        tally.add(time.perf_counter(), await attempt(), counted=False)

    await asyncio.gather(*(prime() for _ in range(concurrency)))
    measure_from = time.monotonic() + warmup
    stop_at = measure_from + duration

    async def caller() -> None:
        while (now := time.monotonic()) < stop_at:
            began = time.perf_counter()
            tally.add(began, await attempt(), counted=now >= measure_from)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    tally.seconds = time.monotonic() - measure_from
    tally.cpu_s = time.process_time() - cpu_before
    return tally


def run_threads(
    make_call: Callable[[], SyncCall], concurrency: int, warmup: float, duration: float
) -> Tally:
    """The same closed loop for synchronous clients: one client per thread."""
    tally = Tally()
    cpu_before = time.process_time()
    window: list[float] = []
    barrier = threading.Barrier(
        concurrency, action=lambda: window.append(time.monotonic() + warmup)
    )

    def attempt(call: SyncCall) -> Outcome:
        try:
            return call()
        except Exception as exc:  # counted; the run goes on
            return type(exc).__name__

    def caller() -> None:
        call = make_call()
        tally.add(time.perf_counter(), attempt(call), counted=False)
        barrier.wait()
        measure_from = window[0]
        while (now := time.monotonic()) < measure_from + duration:
            began = time.perf_counter()
            tally.add(began, attempt(call), counted=now >= measure_from)

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.seconds = time.monotonic() - window[0]
    tally.cpu_s = time.process_time() - cpu_before
    return tally


class Records:
    """The records to send, cycled through so that every target sees the same sequence."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self._next = 0

    def take(self) -> int:
        self._next = (self._next + 1) % len(self.records)
        return self._next


async def http_load(spec: dict[str, Any], records: Records) -> Tally:
    import aiohttp

    bodies = [json.dumps({"records": [record]}).encode() for record in records.records]
    headers = {"Content-Type": "application/json"}
    if key := os.environ.get("KIT_API_KEY"):
        headers["X-API-Key"] = key
    url = f"{spec['target']}/predict"
    connector = aiohttp.TCPConnector(limit=spec["concurrency"])
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def call() -> Outcome:
            body = bodies[records.take()]
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return _status(response.status)

        return await run_async(call, spec["concurrency"], spec["warmup"], spec["duration"])


async def gradio_load(spec: dict[str, Any], records: Records) -> Tally:
    import aiohttp

    bodies = [json.dumps({"data": list(record.values())}).encode() for record in records.records]
    endpoint = f"{spec['target']}/gradio_api/call/predict"
    connector = aiohttp.TCPConnector(limit=spec["concurrency"] * 2)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def call() -> Outcome:
            headers = {"Content-Type": "application/json"}
            body = bodies[records.take()]
            async with session.post(endpoint, data=body, headers=headers) as response:
                if response.status != 200:
                    return _status(response.status)
                event_id = (await response.json())["event_id"]
            async with session.get(f"{endpoint}/{event_id}") as stream:
                if stream.status != 200:
                    return _status(stream.status)
                async for line in stream.content:
                    if line.startswith(b"event: complete"):
                        return None
                    if line.startswith(b"event: error"):
                        return "gradio error"
            return "event stream ended early"

        return await run_async(call, spec["concurrency"], spec["warmup"], spec["duration"])


def remote_load(spec: dict[str, Any], records: Records) -> Tally:
    from app_production.client import RemotePredictor

    def make_call() -> SyncCall:
        client = RemotePredictor(spec["target"], api_key=os.environ.get("KIT_API_KEY"))

        def call() -> Outcome:
            client.predict([records.records[records.take()]])
            return None

        return call

    return run_threads(make_call, spec["concurrency"], spec["warmup"], spec["duration"])


def local_load(spec: dict[str, Any], records: Records) -> Tally:
    from model.predictor import LocalPredictor

    predictor = LocalPredictor(Path(spec["target"]))
    batch = int(spec.get("batch", 1))
    batches = [
        [records.records[(i + j) % len(records.records)] for j in range(batch)]
        for i in range(len(records.records))
    ]

    def make_call() -> SyncCall:
        def call() -> Outcome:
            predictor.predict(batches[records.take()])
            return None

        return call

    return run_threads(make_call, spec["concurrency"], spec["warmup"], spec["duration"])


def run(spec: dict[str, Any], records: Records) -> dict[str, Any]:
    """One measured run; `spec`: kind, target, concurrency, warmup, duration (and batch)."""
    kind = spec["kind"]
    if kind == "http":
        tally = asyncio.run(http_load(spec, records))
    elif kind == "gradio":
        tally = asyncio.run(gradio_load(spec, records))
    elif kind == "remote":
        tally = remote_load(spec, records)
    elif kind == "local":
        tally = local_load(spec, records)
    else:
        raise ValueError(f"unknown kind {kind!r}: expected http, gradio, remote or local")
    return tally.to_json()


def main() -> None:
    """Read one JSON run spec per line on stdin; answer one JSON result per line on stdout."""
    parser = argparse.ArgumentParser(description="load generator of `kit bench`")
    parser.add_argument("--records", type=Path, required=True, help="JSON list of records")
    args = parser.parse_args()
    records = Records(json.loads(args.records.read_text()))
    began = time.perf_counter()
    import pandas  # noqa: F401 - the import floor of any server of this model, timed
    import sklearn  # noqa: F401

    import model.predictor  # noqa: F401

    import_s = time.perf_counter() - began
    import aiohttp  # noqa: F401 - imported before any run: client CPU excludes imports

    import app_production.client  # noqa: F401

    sys.stdout.write(json.dumps({"import_s": import_s}) + "\n")
    sys.stdout.flush()

    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(run(json.loads(line), records)) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
