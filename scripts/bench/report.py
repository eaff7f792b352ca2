"""The bench report: numbers per path and concurrency, the targets, the machine; JSON + MD + PNG.

Latency percentiles come from every request the load generator timed (all rounds pooled);
throughput is successful requests per measured second. Ratios compare paths measured side by
side in the same run: on a shared, noisy machine only those mean something.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

from scripts.bench import logcost
from scripts.bench.runner import FASTAPI, LOCAL, LOGGED, PRODUCTION, PROTOTYPE, REMOTE, Collected

PACKAGES = (
    "bentoml",
    "fastapi",
    "uvicorn",
    "uvloop",
    "httptools",
    "gradio",
    "scikit-learn",
    "pandas",
    "numpy",
    "aiohttp",
    "requests",
)
LABELS = {
    PRODUCTION: "production (BentoML service)",
    LOGGED: "production + prediction log (every answer)",
    FASTAPI: "FastAPI baseline",
    PROTOTYPE: "prototype (Gradio, in-process)",
    REMOTE: "RemotePredictor → service",
    LOCAL: "in-process LocalPredictor",
}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of real samples; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the rounds of one path at one concurrency."""
    latencies = [ms for run in runs for ms in run["latencies_ms"]]
    errors: dict[str, int] = {}
    for run in runs:
        for kind, count in run["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    seconds = sum(run["seconds"] for run in runs)
    calls = sum(run["calls"] for run in runs)  # warm-up included, as in the server's CPU time
    cpu = [run["cpu_s"] for run in runs if "cpu_s" in run]
    return {
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "throughput_rps": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "cpu_us_per_request": sum(cpu) / calls * 1e6 if cpu and calls else None,
        "client_cpu_us_per_call": (
            sum(run.get("client_cpu_s", 0.0) for run in runs) / calls * 1e6 if calls else None
        ),
    }


def machine() -> dict[str, Any]:
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "packages": packages,
    }


def _target(
    name: str, value: float | None, goal: str, met: bool | None, note: str
) -> dict[str, Any]:
    return {"name": name, "value": value, "goal": goal, "met": met, "note": note}


def leak_growth(rss: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """(start MB, end MB, growth MB): medians of the first and last fifth after a 10% warm-up."""
    samples = [mb for _, mb in rss[len(rss) // 10 :]]
    if len(samples) < 10:
        return None
    fifth = len(samples) // 5
    start, end = statistics.median(samples[:fifth]), statistics.median(samples[-fifth:])
    return start, end, end - start


def targets(
    data: Collected, table: dict[str, dict[int, dict[str, Any]]], floor: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each target of issue 5: the measured value, the goal, met or not, and why."""
    prod, base = table[PRODUCTION], table[FASTAPI]
    found: list[dict[str, Any]] = []

    model_us = floor["single"]["client_cpu_us_per_call"]  # in-process: the prediction itself

    def cpu_note(level: int) -> str:
        p, f = prod[level]["cpu_us_per_request"], base[level]["cpu_us_per_request"]
        if p is None or f is None:
            return ""
        note = f"server CPU per request: service {p:.0f} µs, FastAPI {f:.0f} µs"
        if level > 1:  # is the one worker saturated?
            busy = p * prod[level]["throughput_rps"] / 1e6
            note += f"; the service's process kept {busy:.2f} cores busy (one worker)"
        if level == 1 and model_us:  # what serving adds to the model's own CPU time
            note += (
                f"; beyond the in-process prediction ({model_us:.0f} µs): service "
                f"{p - model_us:.0f} µs, FastAPI {f - model_us:.0f} µs"
            )
        return note

    def serving_us(rows: dict[int, dict[str, Any]]) -> str:
        cpu = rows[1]["cpu_us_per_request"]
        return "—" if cpu is None or not model_us else f"{cpu - model_us:.0f} µs"

    if 1 in prod:
        ratio = prod[1]["vs_fastapi"]
        found.append(
            _target(
                "throughput at concurrency 1 vs FastAPI",
                ratio,
                ">= 1.0x",
                ratio >= 1.0,
                cpu_note(1),
            )
        )
        tail = prod[1]["p99_ms"] / prod[1]["p50_ms"]
        found.append(
            _target(
                "p99 / p50 at concurrency 1",
                tail,
                "<= 3",
                tail <= 3,
                f"p50 {prod[1]['p50_ms']:.2f} ms, p99 {prod[1]['p99_ms']:.2f} ms",
            )
        )
    for level in (32, 64):
        if level not in prod:
            continue
        errors = prod[level]["errors"]
        found.append(
            _target(
                f"errors at concurrency {level}",
                errors,
                "0",
                errors == 0,
                json.dumps(prod[level]["error_kinds"]) if errors else "",
            )
        )
        ratio = prod[level]["vs_fastapi"]
        found.append(
            _target(
                f"throughput at concurrency {level} vs FastAPI",
                ratio,
                ">= 8x",
                ratio >= 8,
                cpu_note(level),
            )
        )
    if 1 in table[REMOTE]:
        local_p50 = floor["single"]["p50_ms"]
        overhead = remote_overhead(data.runs)
        found.append(
            _target(
                "remote overhead at concurrency 1 (ms)",
                overhead,
                "<= 1 ms",
                overhead <= 1,
                f"RemotePredictor p50 {table[REMOTE][1]['p50_ms']:.2f} ms, in-process p50 "
                f"{local_p50:.2f} ms, an aiohttp client straight to the service p50 "
                f"{prod[1]['p50_ms']:.2f} ms. The hop is two Python HTTP stacks: server CPU "
                f"beyond the prediction {serving_us(prod)} (FastAPI: {serving_us(base)}), "
                f"client CPU per call {table[REMOTE][1]['client_cpu_us_per_call']:.0f} µs "
                f"(aiohttp: {prod[1]['client_cpu_us_per_call']:.0f} µs)",
            )
        )
    cold = statistics.median(data.cold_starts[PRODUCTION])
    found.append(
        _target(
            "service cold start (s)",
            cold,
            "<= 2.5 s",
            cold <= 2.5,
            f"importing scikit-learn + pandas alone takes {data.import_floor_s:.1f} s here; the "
            "service imports in two processes (BentoML's supervisor, then its worker); FastAPI "
            f"baseline {statistics.median(data.cold_starts[FASTAPI]):.1f} s",
        )
    )
    found.append(
        _target(
            "kit promote end to end (s)",
            data.promote_s,
            "<= 15 s",
            data.promote_s <= 15,
            f"of which cold start {data.cold_starts[PRODUCTION][0]:.1f} s",
        )
    )
    growth = None if data.leak is None else leak_growth(data.leak["rss_mb"])
    if data.leak is None or growth is None:
        why = "not measured in --quick mode" if data.leak is None else "too few RSS samples"
        found.append(_target("RSS growth over a 60 s load (MB)", None, "no growth", None, why))
    else:
        start, end, grown = growth
        limit = max(10.0, 0.05 * start)
        found.append(
            _target(
                f"RSS growth over a {data.leak['seconds']:.0f} s load (MB)",
                grown,
                f"<= {limit:.0f} MB",
                grown <= limit,
                f"{start:.0f} MB → {end:.0f} MB over {data.leak['requests']} requests, "
                f"{sum(data.leak['errors'].values())} errors",
            )
        )
    return found


def remote_overhead(runs: list[dict[str, Any]]) -> float:
    """Median over rounds of RemotePredictor's p50 minus the in-process p50 (concurrency 1),
    each pair measured back to back in the same round."""
    differences = []
    for r in runs:
        if r["target"] == REMOTE and r["concurrency"] == 1:
            local = [x for x in runs if x["target"] == LOCAL and x["round"] == r["round"]]
            if local:
                differences.append(summarize_runs([r])["p50_ms"] - summarize_runs(local)["p50_ms"])
    return statistics.median(differences) if differences else float("nan")


def ratio_to(
    runs: list[dict[str, Any]], name: str, level: int, baseline: str = FASTAPI
) -> float | None:
    """Median over rounds of throughput / `baseline`'s throughput in the same round: the two
    ran back to back, so a slow spell of this shared machine weighs on both."""
    ratios = []
    for r in runs:
        if r["target"] != name or r["concurrency"] != level:
            continue
        base = [
            b
            for b in runs
            if b["target"] == baseline and b["concurrency"] == level and b["round"] == r["round"]
        ]
        base_rps = summarize_runs(base)["throughput_rps"] if base else 0.0
        if base_rps:
            ratios.append(summarize_runs([r])["throughput_rps"] / base_rps)
    return statistics.median(ratios) if ratios else None


def summarize(data: Collected) -> dict[str, Any]:
    """The report: what `kit bench` writes as JSON and renders as Markdown and a plot."""
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for name in (PRODUCTION, LOGGED, FASTAPI, PROTOTYPE, REMOTE):
        table[name] = {}
        for level in data.plan.levels:
            runs = [r for r in data.runs if r["target"] == name and r["concurrency"] == level]
            if runs:
                table[name][level] = summarize_runs(runs)
                table[name][level]["vs_fastapi"] = ratio_to(data.runs, name, level)
                if name == LOGGED:
                    table[name][level]["vs_production"] = ratio_to(
                        data.runs, name, level, PRODUCTION
                    )
        if name == LOGGED and not table[name]:
            del table[name]  # a run without the logged target
    cost = logcost.summary(data, table)
    floor = {
        "single": summarize_runs([r for r in data.runs if r["target"] == LOCAL]),
        "batched_rows_per_s": summarize_runs([data.floor["batched"]])["throughput_rps"]
        * data.floor["batched"]["batch"],
        "batch": data.floor["batched"]["batch"],
    }
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": data.plan.mode,
        "plan": data.to_json()["plan"],
        "machine": machine(),
        "model": data.model,
        "promote_s": data.promote_s,
        "servers": {
            name: {
                "cold_start_s": data.cold_starts[name],
                "cold_start_median_s": statistics.median(data.cold_starts[name]),
                "peak_rss_mb": {k: round(v, 1) for k, v in data.peaks.get(name, {}).items()},
            }
            for name in (PRODUCTION, LOGGED, FASTAPI, PROTOTYPE)
            if data.cold_starts.get(name)
        },
        "import_floor_s": data.import_floor_s,
        "floor": floor,
        "paths": {name: {str(k): v for k, v in levels.items()} for name, levels in table.items()},
        "leak": data.leak,
        "prediction_log": cost,
        "targets": [*targets(data, table, floor), *filter(None, [logcost.target(cost)])],
    }
