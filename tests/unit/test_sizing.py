"""Sizing the service from a `kit bench` run (app_production/sizing.py): the arithmetic on a small
made-up report, and on the run committed in scripts/bench/results/bench.json."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import pytest

from app_production import sizing
from model.errors import UsageError
from tests.helpers import ROOT

COMMITTED = ROOT / "scripts" / "bench" / "results" / "bench.json"


def _row(rps: float, p99: float, cpu_us: float | None = 1000.0, errors: int = 0) -> dict[str, Any]:
    return {"throughput_rps": rps, "p99_ms": p99, "cpu_us_per_request": cpu_us, "errors": errors}


def fake_report(**levels: dict[str, Any]) -> dict[str, Any]:
    return {
        "mode": "full",
        "created_at": "2026-01-01T00:00:00+00:00",
        "model": {"name": "penguins", "version": "v1"},
        "machine": {"cores": 2, "cpu_model": "Test CPU"},
        "paths": {
            "production": levels
            or {
                "1": _row(100, 8.0, cpu_us=5000),
                "8": _row(400, 20.0, cpu_us=2000),
                "32": _row(800, 45.0, cpu_us=1100),
                "64": _row(900, 90.0, cpu_us=1000),
            }
        },
        "servers": {"production": {"peak_rss_mb": {"main": 80.0, "worker-1": 250.0, "total": 330}}},
    }


def test_the_operating_point_is_the_highest_concurrency_that_meets_the_p99_goal() -> None:
    report = fake_report()
    assert sizing.operating_point(report, 50.0)[0] == 32
    assert sizing.operating_point(report, 20.0)[0] == 8  # a p99 equal to the goal meets it
    assert sizing.operating_point(report, None)[0] == 64  # no goal: the most throughput
    with_errors = fake_report(**{"1": _row(100, 8.0), "8": _row(900, 9.0, errors=3)})
    assert sizing.operating_point(with_errors, 50.0)[0] == 1  # a level with errors never counts


def test_a_goal_no_level_meets_is_refused_with_the_best_measured() -> None:
    with pytest.raises(UsageError, match=r"p99 <= 5 ms \(the lowest was 8.0 ms\)") as caught:
        sizing.size(fake_report(), "bench.json", target_rps=100, p99_ms=5)
    assert caught.value.exit_code == 2


def test_the_arithmetic() -> None:
    s = sizing.size(fake_report(), "bench.json", target_rps=2000, p99_ms=50)
    # 800 req/s per replica at concurrency 32, run at 70 %: 2000 / 560 = 3.57 -> 4
    assert s.replicas == math.ceil(2000 / (800 * sizing.HEADROOM)) == 4
    assert s.max_replicas == 4 * sizing.MAX_REPLICAS_FACTOR
    assert s.hpa_cpu_percent == 70
    # 800 req/s × 1100 µs = 0.88 cores -> 900m (steps of 50m)
    assert s.resources.cpu_m == 900
    # (80 main + 2 workers × 250) × 1.25 = 725 MiB -> 768Mi (steps of 64 Mi)
    assert s.resources.memory_mi == 768
    assert s.resources.to_k8s() == {
        "requests": {"cpu": "900m", "memory": "768Mi"},
        "limits": {"cpu": "1800m", "memory": "1536Mi"},
    }
    assert s.measured


def test_prod_keeps_two_replicas_for_a_small_load() -> None:
    s = sizing.size(fake_report(), "bench.json", target_rps=10, p99_ms=50)
    assert s.replicas == sizing.MIN_PROD_REPLICAS == 2
    assert "= 1 → 2 (prod keeps at least 2)" in s.lines[2]


def test_memory_counts_every_worker_the_service_runs() -> None:
    one = sizing.memory_mi(fake_report())
    assert one[0] == 80 + 2 * 250  # a bench of one worker: the second is counted like it
    two = fake_report()
    two["servers"]["production"]["peak_rss_mb"] = {
        "main": 80.0,
        "worker-1": 250.0,
        "worker-2": 260.0,
    }
    assert sizing.memory_mi(two)[0] == 80 + 2 * 260


def test_the_service_runs_the_workers_sizing_counts() -> None:
    """sizing.SERVICE_WORKERS is the `workers=` of the service's decorator (read, not imported:
    importing the service needs a model in BentoML's store)."""
    tree = ast.parse((ROOT / "app_production" / "service.py").read_text())
    workers = [
        keyword.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "service"
        for keyword in node.keywords
        if keyword.arg == "workers"
    ]
    assert [ast.literal_eval(w) for w in workers] == [sizing.SERVICE_WORKERS]


def test_no_cpu_measured_falls_back_to_the_default_and_says_so() -> None:
    report = fake_report(**{"1": _row(100, 8.0, cpu_us=None)})
    s = sizing.size(report, "bench.json", target_rps=100, p99_ms=None)
    assert s.resources.cpu_m == sizing.DEFAULT_CPU_M
    assert "no server CPU measured" in s.lines[3]


def test_each_figure_is_printed_with_its_arithmetic() -> None:
    lines = sizing.size(fake_report(), "bench.json", target_rps=2000, p99_ms=50).lines
    assert lines[0].startswith("bench: bench.json (full run of 2026-01-01")
    assert (
        "800 req/s at concurrency 32 (p99 45.0 ms, <= 50 ms; concurrency 64: p99 90.0" in lines[1]
    )
    assert "ceil(2000 req/s / (800 req/s × 0.7 headroom)) = ceil(3.57) = 4" in lines[2]
    assert "800 req/s × 1100 µs/req = 0.88 cores → 900m (limit 1800m)" in lines[3]
    assert "CPU target 70 %" in lines[4] and "4 to 8 replicas" in lines[4]
    assert "(80 MiB main + 2 workers × 250 MiB) × 1.25 = 725 MiB → 768Mi" in lines[5]


def test_defaults_are_stated() -> None:
    s = sizing.defaults("no bench run")
    assert (s.replicas, s.max_replicas, s.measured) == (2, 4, False)
    assert s.lines[0] == "no bench run"
    assert (
        f"{sizing.DEFAULT_CPU_M}m" in s.lines[2] and f"{sizing.DEFAULT_MEMORY_MI}Mi" in s.lines[2]
    )
    assert sizing.defaults("--replicas 5", 5).replicas == 5


def test_reading_bench_files(tmp_path: Path) -> None:
    assert sizing.read_bench(tmp_path / "absent.json") is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError, match="cannot be read as JSON"):
        sizing.read_bench(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"paths": {}}))
    with pytest.raises(UsageError, match="is not a `kit bench` report"):
        sizing.read_bench(tmp_path / "other.json")


def test_the_committed_bench_run() -> None:
    report = sizing.read_bench(COMMITTED)
    assert report is not None
    production = report["paths"]["production"]
    s = sizing.size(report, str(COMMITTED), target_rps=3000, p99_ms=50)
    level, row = sizing.operating_point(report, 50)
    assert row is production[str(level)] and row["p99_ms"] <= 50
    assert all(r["p99_ms"] > 50 for c, r in production.items() if int(c) > level)
    capacity = row["throughput_rps"]
    assert s.replicas == max(2, math.ceil(3000 / (capacity * sizing.HEADROOM)))
    cores = capacity * row["cpu_us_per_request"] / 1e6
    assert cores * 1000 <= s.resources.cpu_m < cores * 1000 + sizing.CPU_STEP_M
    # a replica's one serving worker is single-threaded: the measured CPU is about one core
    assert 0.5 < cores < 1.5
    assert s.resources.memory_mi >= sizing.memory_mi(report)[0] * sizing.MEMORY_MARGIN
