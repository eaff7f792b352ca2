"""The soak: 64 callers for 60 s through `RemotePredictor` against a promoted service.

Four processes of 16 callers each (tests/load_probe.py), like four UI processes sharing the
service, each with one RemotePredictor as a UI has. Zero failed predictions; the service's memory
(supervisor and both workers, summed) may not grow by 10% or more after the warm-up. Figures:
test-output/reliability/soak.json. SOAK_SECONDS shortens or lengthens it (default 60).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import ROOT, kit_env, promote, stop_promoted, write_figures

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these

PROCESSES, CALLERS_EACH = 4, 16
WARM_UP_S = 10.0  # memory is compared from here on: imports, pools and caches are settled


def _service_rss_mb(supervisor: int, service_id: str) -> float:
    """RSS of the supervisor and every process carrying the service's KIT_SERVICE_ID."""
    total = 0
    for process in psutil.process_iter():
        try:
            if process.pid == supervisor or process.environ().get("KIT_SERVICE_ID") == service_id:
                total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def test_64_callers_for_a_minute_fail_nothing_and_memory_stays_flat(
    kit_home: Path, tmp_path: Path
) -> None:
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    promoted = promote(kit_home)
    state = json.loads((kit_home / "state.json").read_text())
    samples: list[tuple[float, float]] = []  # (seconds since start, MB)
    done = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not done.is_set():
            samples.append(
                (time.monotonic() - started, _service_rss_mb(promoted.pid, state["service_id"]))
            )
            done.wait(1.0)

    try:
        command = [sys.executable, "-m", "tests.load_probe", promoted.url, str(seconds)]
        probes = [
            subprocess.Popen(
                [*command, str(CALLERS_EACH)],
                cwd=ROOT,
                env=kit_env(kit_home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        sampler = threading.Thread(target=sample)
        sampler.start()
        outputs = []
        for probe in probes:
            out, err = probe.communicate(timeout=seconds + 180)
            assert probe.returncode == 0, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))
        done.set()
        sampler.join()
    finally:
        done.set()
        stop_promoted(promoted)

    latencies = [ms for out in outputs for ms in out["latencies_ms"]]
    failed = sum(out["failed"] for out in outputs)
    after_warm_up = [mb for at, mb in samples if at >= WARM_UP_S] or [samples[-1][1]]
    baseline, last, peak = after_warm_up[0], after_warm_up[-1], max(after_warm_up)
    figures = {
        "callers": PROCESSES * CALLERS_EACH,
        "seconds": seconds,
        "requests": len(latencies) + failed,
        "failed": failed,
        "failures": {k: v for out in outputs for k, v in out["failures"].items()},
        "per_second": round((len(latencies) + failed) / seconds),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "rss_after_warm_up_mb": round(baseline),
        "rss_at_end_mb": round(last),
        "rss_peak_mb": round(peak),
        "rss_growth_pct": round(100 * (peak - baseline) / baseline, 1),  # the worst moment
    }
    write_figures("soak", figures)
    assert failed == 0, figures["failures"]
    assert len(latencies) > 1000, figures  # a soak, not a handful of calls
    assert figures["rss_growth_pct"] < 10, figures
