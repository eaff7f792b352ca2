"""Callers in a loop through `RemotePredictor` (the UI's own client), for a fixed time.

One process of the soak in tests/integration/test_soak.py: like one UI process, it shares one
RemotePredictor between its callers (threads). Prints one JSON line with what they saw:

    .venv/bin/python -m tests.load_probe URL SECONDS CALLERS
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

from tests.helpers import GENTOO


def run(url: str, seconds: float, callers: int) -> dict[str, object]:
    from app_production.client import RemotePredictor

    client = RemotePredictor(url)  # the UI's defaults: timeouts and retries as shipped
    client.predict([GENTOO])  # connected and warm before the clock starts
    latencies: list[list[float]] = [[] for _ in range(callers)]
    failures: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def caller(mine: list[float]) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                answer = client.predict([GENTOO])
                if answer[0].label != "Gentoo":
                    raise AssertionError(f"wrong answer {answer[0]}")
            except Exception as exc:  # counted, never raised: the figures are the point
                with lock:
                    failures[f"{type(exc).__name__}: {exc}"[:200]] += 1
                continue
            mine.append(time.perf_counter() - started)

    threads = [threading.Thread(target=caller, args=(mine,)) for mine in latencies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    client.close()
    return {
        "latencies_ms": [round(s * 1000, 3) for mine in latencies for s in mine],
        "failed": sum(failures.values()),
        "failures": dict(failures.most_common(10)),
    }


if __name__ == "__main__":  # pragma: no cover - run by the soak test as a process
    print(json.dumps(run(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))))
