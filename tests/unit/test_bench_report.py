"""The bench report's arithmetic and verdicts, on hand-made measurements."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from scripts.bench import logcost, readme, render
from scripts.bench.report import leak_growth, percentile, summarize, summarize_runs
from scripts.bench.runner import (
    FASTAPI,
    LOCAL,
    LOGGED,
    PRODUCTION,
    PROTOTYPE,
    QUICK,
    REMOTE,
    Collected,
)


def test_percentile_is_nearest_rank_on_real_samples() -> None:
    samples = [float(x) for x in range(1, 101)]  # 1..100
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def _run(
    latencies: list[float],
    seconds: float,
    errors: dict[str, int] | None = None,
    calls: int | None = None,
    cpu_s: float | None = None,
) -> dict[str, Any]:
    run: dict[str, Any] = {
        "latencies_ms": latencies,
        "errors": errors or {},
        "seconds": seconds,
        "calls": calls if calls is not None else len(latencies),
    }
    if cpu_s is not None:
        run["cpu_s"] = cpu_s
    return run


def test_rounds_are_pooled_and_cpu_is_divided_by_every_call() -> None:
    rounds = [
        _run([1.0, 2.0, 3.0], 1.0, {"HTTP 503": 1}, calls=5, cpu_s=0.005),
        _run([4.0, 5.0], 1.0, {"HTTP 503": 2, "ClientOSError": 1}, calls=5, cpu_s=0.005),
    ]
    summary = summarize_runs(rounds)
    assert summary["requests"] == 5
    assert summary["throughput_rps"] == 2.5  # successes per measured second
    assert summary["errors"] == 4
    assert summary["error_kinds"] == {"HTTP 503": 3, "ClientOSError": 1}
    assert summary["p50_ms"] == 3.0 and summary["max_ms"] == 5.0
    assert summary["cpu_us_per_request"] == pytest.approx(1000.0)  # 10 ms / 10 calls


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        ([300.0] * 50, 0.0),
        ([300.0 + i for i in range(50)], None),  # steady growth shows up
        ([300.0] * 5, "too few"),
    ],
)
def test_leak_growth_compares_the_first_and_last_fifth(series: list[float], expected: Any) -> None:
    result = leak_growth([(i * 0.2, mb) for i, mb in enumerate(series)])
    if expected == "too few":
        assert result is None
        return
    assert result is not None
    start, end, grown = result
    if expected is None:
        assert grown > 30 and end > start
    else:
        assert grown == expected


def _collected(
    *,
    fast_service: bool,
    leak: list[float] | None = None,
    logged_share: float = 0.97,
    log_rows: int | None = None,
) -> Collected:
    """Two concurrency levels; the service `fast_service` or not, and a FastAPI baseline; the
    logged service at `logged_share` of production's throughput, its log holding `log_rows`
    rows (default: one per prediction answered)."""
    runs = []
    for level in QUICK.levels:
        base_rps = 150
        service_rps = (
            (160 if level == 1 else 1500) if fast_service else (100 if level == 1 else 600)
        )
        for name, rps in (
            (PRODUCTION, service_rps),
            (LOGGED, service_rps * logged_share),
            (FASTAPI, base_rps),
            (PROTOTYPE, 30),
            (REMOTE, service_rps * 0.9),
        ):
            count = int(rps)
            latency = 1000 / rps * level
            slow = count // 20  # the slowest 5%: they decide p99
            latencies = [latency] * (count - slow) + [latency * (2 if fast_service else 5)] * slow
            cpu_s = 0.5 if name != LOGGED else 0.5 * 1.04 / logged_share  # 4% more per request
            runs.append(
                {
                    "target": name,
                    "concurrency": level,
                    "round": 1,
                    **_run(latencies, 1.0, cpu_s=cpu_s),
                }
            )
    runs.append({"target": LOCAL, "concurrency": 1, "round": 1, **_run([4.5] * 200, 1.0)})
    floor = {"batched": {**_run([20.0] * 50, 1.0), "batch": 1000}}
    answered = sum(r["calls"] for r in runs if r["target"] == LOGGED)
    rows = answered if log_rows is None else log_rows
    stats = dict.fromkeys(("dropped_queue_full", "failed_write", "sampled_out"), 0)
    stats |= {"written": rows, "dropped_closed": answered - rows}
    return Collected(
        plan=QUICK,
        model={"name": "penguins", "version": "v1", "estimator": "Pipeline", "sha256": "ab"},
        promote_s=10.0 if fast_service else 20.0,
        cold_starts={
            PRODUCTION: [2.0 if fast_service else 7.0],
            LOGGED: [2.1],
            FASTAPI: [4.0],
            PROTOTYPE: [6.0],
        },
        runs=runs,
        floor=floor,
        peaks={PRODUCTION: {"main": 80.0, "worker-1": 280.0, "total": 360.0}},
        leak=None
        if leak is None
        else {
            "seconds": 60.0,
            "concurrency": 32,
            "requests": 1000,
            "errors": {},
            "rss_mb": [(i * 0.5, mb) for i, mb in enumerate(leak)],
        },
        import_floor_s=3.5,
        prediction_log={
            "folder": "prediction-log",
            "files": 1,
            "rows": rows,
            "answered": answered,
            "stats": stats,
        },
    )


def _verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    return {t["name"]: t["met"] for t in report["targets"]}


def test_targets_met_when_the_numbers_say_so() -> None:
    report = summarize(_collected(fast_service=True, leak=[300.0] * 100))
    verdicts = _verdicts(report)
    assert verdicts == {
        "throughput at concurrency 1 vs FastAPI": True,
        "p99 / p50 at concurrency 1": True,
        "errors at concurrency 32": True,
        "throughput at concurrency 32 vs FastAPI": True,
        "remote overhead at concurrency 1 (ms)": False,  # 6.9 ms - 4.5 ms
        "service cold start (s)": True,
        "kit promote end to end (s)": True,
        "RSS growth over a 60 s load (MB)": True,
        "prediction log costs at most 5% throughput at 32 callers": True,
    }
    assert report["paths"][PRODUCTION]["32"]["vs_fastapi"] == pytest.approx(10.0)
    assert report["floor"]["batched_rows_per_s"] == pytest.approx(50_000)


def test_targets_missed_say_why() -> None:
    report = summarize(_collected(fast_service=False, leak=[300.0 + i for i in range(100)]))
    missed = {t["name"]: t for t in report["targets"] if t["met"] is False}
    assert "throughput at concurrency 1 vs FastAPI" in missed
    assert "server CPU per request" in missed["throughput at concurrency 1 vs FastAPI"]["note"]
    assert missed["p99 / p50 at concurrency 1"]["value"] == pytest.approx(5.0)
    assert "scikit-learn" in missed["service cold start (s)"]["note"]
    assert missed["kit promote end to end (s)"]["value"] == 20.0
    assert "RSS growth over a 60 s load (MB)" in missed


def test_quick_mode_marks_the_leak_check_not_measured() -> None:
    report = summarize(_collected(fast_service=True))
    leak = next(t for t in report["targets"] if t["name"].startswith("RSS growth"))
    assert leak["met"] is None and "--quick" in leak["note"]


def test_render_writes_standard_json_markdown_and_a_png(tmp_path: Path) -> None:
    report = summarize(_collected(fast_service=True))
    report["paths"][PROTOTYPE]["1"]["p99_ms"] = float("nan")  # a path with no sample
    written = render.write(report, tmp_path)
    assert [p.name for p in written] == ["bench.json", "bench.md", "bench.png"]
    data = json.loads((tmp_path / "bench.json").read_text())  # strict: NaN became null
    assert data["paths"][PROTOTYPE]["1"]["p99_ms"] is None
    text = (tmp_path / "bench.md").read_text()
    assert (
        "## Targets" in text and "![throughput and latency against concurrency](bench.png)" in text
    )
    for label in (
        "production (BentoML service)",
        "production + prediction log (every answer)",
        "FastAPI baseline",
        "RemotePredictor",
    ):
        assert label in text
    assert "## Prediction log (every answer logged)" in text
    assert "| 32 | 1500 | 1455 | 0.970x | 3.0% |" in text  # logged / production, the loss
    assert data["prediction_log"]["levels"]["32"]["ratio"] == pytest.approx(0.97)
    assert " cores (" in text and "Python 3." in text and "bentoml " in text  # the machine
    png = (tmp_path / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_the_prediction_log_cost_is_logged_over_production_in_the_same_rounds() -> None:
    report = summarize(_collected(fast_service=True, logged_share=0.97))
    cost = report["prediction_log"]
    for level in ("1", "32"):
        at = cost["levels"][level]
        assert at["ratio"] == pytest.approx(0.97, abs=0.002)  # int() of the request counts
        assert at["loss_pct"] == pytest.approx(3.0, abs=0.2)
        assert at["extra_cpu_us_per_request"] > 0
    assert report["paths"][LOGGED]["32"]["vs_production"] == cost["levels"]["32"]["ratio"]
    assert cost["rows"] == cost["answered"] > 0 and cost["errors"] == 0
    target = next(t for t in report["targets"] if t["name"] == logcost.TARGET)
    assert target["met"] is True and target["value"] == pytest.approx(3.0, abs=0.2)
    assert f"the log wrote {cost['rows']} rows for {cost['answered']} predictions" in target["note"]
    assert (
        "1: 0.97x, 32: 0.97x" in target["note"]
        and "server CPU per request at 32" in (target["note"])
    )
    assert render.format_value(target) == f"{target['value']:.1f}%"


@pytest.mark.parametrize(
    ("share", "rows", "why"),
    [
        (0.90, None, "10.0"),  # the figure itself says by how much
        (0.99, 100, "dropped_closed"),  # fast, but not every answer was logged
    ],
)
def test_the_prediction_log_target_is_missed_with_the_figure(
    share: float, rows: int | None, why: str
) -> None:
    report = summarize(_collected(fast_service=True, logged_share=share, log_rows=rows))
    target = next(t for t in report["targets"] if t["name"] == logcost.TARGET)
    assert target["met"] is False
    assert why in render.format_value(target) + target["note"]


def test_a_prediction_log_error_misses_the_target() -> None:
    data = _collected(fast_service=True, logged_share=1.0)
    run = next(r for r in data.runs if r["target"] == LOGGED and r["concurrency"] == 32)
    run["errors"] = {"HTTP 500": 1}
    target = next(t for t in summarize(data)["targets"] if t["name"] == logcost.TARGET)
    assert target["met"] is False and "; 1 errors" in target["note"]


def test_a_run_without_the_logged_target_reports_without_it() -> None:
    data = _collected(fast_service=True)
    data.runs = [r for r in data.runs if r["target"] != LOGGED]
    data.prediction_log = None
    report = summarize(data)
    assert LOGGED not in report["paths"] and report["prediction_log"] is None
    assert all(t["name"] != logcost.TARGET for t in report["targets"])
    assert "## Prediction log" not in render.markdown(report)


def test_the_readme_section_has_one_row_and_one_target_more() -> None:
    report = summarize(_collected(fast_service=True))
    text = readme.section(report)
    assert text.count("| production + prediction log (every answer) |") == 1
    assert text.count(f"| {logcost.TARGET} |") == 1
    assert "production + prediction log (every answer) 2.1 s" not in text  # no extra cold start
