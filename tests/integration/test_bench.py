"""`kit bench --quick`, the CI smoke test: real servers, a real load, a complete report.

It checks the report's structure and the bench's manners (nothing left running, the user's
home untouched, a working API key not leaking into it), never its speed.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import psutil

from tests.helpers import run_kit

PATHS = ("production", "logged", "fastapi", "prototype", "remote")
SERVERS = ("production", "logged", "fastapi", "prototype")
LOG_TARGET = "prediction log costs at most 5% throughput at 32 callers"


def _bench_processes() -> list[int]:
    """Live processes started by any bench: their KIT_HOME is inside a kit-bench- folder."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if "/kit-bench-" in process.environ().get("KIT_HOME", ""):
                found.append(process.pid)
    return found


def test_quick_bench_writes_a_complete_report_and_leaves_nothing_running(
    kit_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    before = sorted(p.name for p in kit_home.rglob("*"))
    result = run_kit(
        "bench",
        "--quick",
        "--out",
        str(out),
        home=kit_home,
        timeout=240,
        KIT_API_KEY="a-key-the-bench-must-not-need",  # the bench serves without auth
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "wrote" in output and "targets" in output

    report = json.loads((out / "bench.json").read_text())
    assert report["mode"] == "quick"
    assert report["plan"]["levels"] == [1, 32]
    assert report["machine"]["cores"] == os.cpu_count()
    assert {"cpu_model", "python", "packages", "memory_gib"} <= set(report["machine"])
    assert report["machine"]["packages"]["bentoml"] == "1.4.39"
    for path in PATHS:
        for level in ("1", "32"):
            row = report["paths"][path][level]
            assert row["requests"] > 0, (path, level, row)
            assert row["errors"] == 0, (path, level, row["error_kinds"])
            assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
            assert row["throughput_rps"] > 0
    for server in SERVERS:
        facts = report["servers"][server]
        assert len(facts["cold_start_s"]) == 1 and facts["cold_start_s"][0] > 0
        assert facts["peak_rss_mb"]["total"] > 0 and facts["peak_rss_mb"]["main"] > 0
    assert "worker-1" in report["servers"]["production"]["peak_rss_mb"]  # RSS per worker
    assert report["promote_s"] > 0
    assert report["floor"]["single"]["requests"] > 0 and report["floor"]["batched_rows_per_s"] > 0
    names = [t["name"] for t in report["targets"]]
    assert len(names) == 9 and all(t["met"] in (True, False, None) for t in report["targets"])
    assert next(t for t in report["targets"] if t["name"].startswith("RSS"))["met"] is None

    # the logged target really logged: one row per prediction it answered, none lost
    cost = report["prediction_log"]
    assert cost["answered"] > 0 and cost["rows"] == cost["answered"], cost
    assert cost["files"] >= 1 and cost["errors"] == 0
    assert cost["stats"]["written"] == cost["rows"] and cost["stats"]["sampled_out"] == 0
    for key in ("1", "32"):
        assert cost["levels"][key]["ratio"] > 0
        assert report["paths"]["logged"][key]["vs_production"] == cost["levels"][key]["ratio"]
    log_target = next(t for t in report["targets"] if t["name"] == LOG_TARGET)
    assert log_target["met"] in (True, False) and "rows for" in log_target["note"]

    markdown = (out / "bench.md").read_text()
    for callers in (1, 32):
        assert f"| production (BentoML service) | {callers} |" in markdown
        assert f"| FastAPI baseline | {callers} |" in markdown
        assert f"| production + prediction log (every answer) | {callers} |" in markdown
    assert "## Prediction log" in markdown and f"| {LOG_TARGET} |" in markdown
    assert "(bench.png)" in markdown
    assert (out / "bench.png").read_bytes().startswith(b"\x89PNG")

    assert _bench_processes() == [], "the bench left servers running"
    assert sorted(p.name for p in kit_home.rglob("*")) == before, "the user's home changed"
