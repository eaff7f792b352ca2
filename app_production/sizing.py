"""Size the service's Deployment from a `kit bench` run: replicas, CPU and memory, HPA target.

The arithmetic, one figure per line of `kit deploy k8s --target-rps R [--p99-ms L]`:

- per-replica throughput C: the BentoML service's req/s at the highest concurrency of the
  bench whose p99 meets the goal L (and that had no errors);
- replicas N = ceil(R / (C × HEADROOM)): at the target load every replica runs at most at
  HEADROOM of what it was measured to sustain; prod keeps at least MIN_PROD_REPLICAS;
- CPU request = C × the server's CPU per request at that point (the cores a replica uses when
  it runs at C), so 100 % of the request is the measured capacity; the HPA's CPU target is
  HEADROOM × 100 %: it adds replicas when the load grows past the plan;
- memory request = (main process + SERVICE_WORKERS workers) peak RSS × MEMORY_MARGIN.

Without a bench run, or without a target, the stated `DEFAULT_*` values are used and said so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import UsageError

HEADROOM = 0.7
MIN_PROD_REPLICAS = 2  # one pod can be restarted or evicted while another serves
MAX_REPLICAS_FACTOR = 2  # the HPA may grow to twice the planned replicas
SERVICE_WORKERS = 2  # app_production/service.py: workers=2 (one serves, one hot standby)
MEMORY_MARGIN = 1.25
LIMIT_FACTOR = 2  # limits: twice the requests (CPU: a burst; memory: a large batch)
CPU_STEP_M, MEMORY_STEP_MI = 50, 64
DEFAULT_REPLICAS = 2
DEFAULT_CPU_M = 500
DEFAULT_MEMORY_MI = 768  # two workers of a scikit-learn model: about 600 MiB measured here


def _round_up(value: float, step: int) -> int:
    return max(step, math.ceil(value / step) * step)


@dataclass(frozen=True)
class Resources:
    """Requests of one container; limits are LIMIT_FACTOR times them."""

    cpu_m: int
    memory_mi: int

    def to_k8s(self) -> dict[str, dict[str, str]]:
        def spec(cpu: int, memory: int) -> dict[str, str]:
            return {"cpu": f"{cpu}m", "memory": f"{memory}Mi"}

        return {
            "requests": spec(self.cpu_m, self.memory_mi),
            "limits": spec(self.cpu_m * LIMIT_FACTOR, self.memory_mi * LIMIT_FACTOR),
        }


@dataclass(frozen=True)
class Sizing:
    """The production shape of the service, and how it was arrived at (`lines`)."""

    replicas: int
    max_replicas: int
    hpa_cpu_percent: int
    resources: Resources
    lines: tuple[str, ...]
    measured: bool  # from a bench run (else the stated defaults)


def defaults(why: str, replicas: int = DEFAULT_REPLICAS) -> Sizing:
    resources = Resources(DEFAULT_CPU_M, DEFAULT_MEMORY_MI)
    return Sizing(
        replicas=replicas,
        max_replicas=replicas * MAX_REPLICAS_FACTOR,
        hpa_cpu_percent=round(HEADROOM * 100),
        resources=resources,
        lines=(
            why,
            f"replicas: {replicas} (HPA {replicas} to {replicas * MAX_REPLICAS_FACTOR}, "
            f"CPU target {round(HEADROOM * 100)} %)",
            f"CPU request: {DEFAULT_CPU_M}m, memory request: {DEFAULT_MEMORY_MI}Mi "
            f"(defaults; limits {LIMIT_FACTOR} ×)",
        ),
        measured=False,
    )


def read_bench(path: Path) -> dict[str, Any] | None:
    """A `kit bench` report (bench.json), or None if there is none at `path`."""
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read as JSON ({exc}): run `kit bench` again") from exc
    levels = report.get("paths", {}).get("production") if isinstance(report, dict) else None
    if not isinstance(levels, dict) or not levels:
        raise UsageError(
            f"{path} is not a `kit bench` report (no measurements of the production service): "
            "run `kit bench`, or pass --bench with its bench.json"
        )
    return dict(report)


def operating_point(report: dict[str, Any], p99_ms: float | None) -> tuple[int, dict[str, Any]]:
    """(concurrency, row) of the highest concurrency whose p99 meets the goal, without errors."""
    rows = sorted((int(level), row) for level, row in report["paths"]["production"].items())
    usable = [(c, r) for c, r in rows if not r.get("errors") and r.get("p99_ms") is not None]
    meeting = [(c, r) for c, r in usable if p99_ms is None or r["p99_ms"] <= p99_ms]
    if not meeting:
        best = min((r["p99_ms"] for _, r in usable), default=None)
        lowest = "no level without errors" if best is None else f"the lowest was {best:.1f} ms"
        raise UsageError(
            f"no concurrency of the bench meets p99 <= {p99_ms:g} ms ({lowest}): more replicas "
            "do not make one request faster; raise --p99-ms, or make the model cheaper"
        )
    return meeting[-1]


def memory_mi(report: dict[str, Any]) -> tuple[float, str]:
    """Peak RSS of one replica with SERVICE_WORKERS workers (MiB), and how it was counted."""
    peaks = dict(report.get("servers", {}).get("production", {}).get("peak_rss_mb", {}))
    peaks.pop("total", None)
    main = float(peaks.pop("main", 0.0))
    workers = [float(v) for v in peaks.values()]
    if not workers:
        return DEFAULT_MEMORY_MI / MEMORY_MARGIN, "no RSS measured: the default"
    worker = max(workers)
    total = main + worker * SERVICE_WORKERS
    return total, f"{main:.0f} MiB main + {SERVICE_WORKERS} workers × {worker:.0f} MiB"


def size(report: dict[str, Any], source: str, *, target_rps: float, p99_ms: float | None) -> Sizing:
    """Replicas, resources and HPA target for `target_rps` from a bench report (see module)."""
    level, row = operating_point(report, p99_ms)
    capacity = float(row["throughput_rps"])
    others = [
        f"concurrency {c}: p99 {r['p99_ms']:.1f} ms, over the goal"
        for c, r in sorted((int(k), v) for k, v in report["paths"]["production"].items())
        if p99_ms is not None and r.get("p99_ms") is not None and r["p99_ms"] > p99_ms
    ]
    goal = "no --p99-ms goal" if p99_ms is None else f"<= {p99_ms:g} ms"
    raw = target_rps / (capacity * HEADROOM)
    replicas = max(MIN_PROD_REPLICAS, math.ceil(raw))
    floor = (
        f" → {replicas} (prod keeps at least {MIN_PROD_REPLICAS})"
        if replicas > math.ceil(raw)
        else ""
    )
    cpu_us = row.get("cpu_us_per_request")
    if cpu_us:
        cores = capacity * float(cpu_us) / 1e6
        cpu_m = _round_up(cores * 1000, CPU_STEP_M)
        cpu_line = (
            f"CPU request: {capacity:.0f} req/s × {float(cpu_us):.0f} µs/req = {cores:.2f} cores "
            f"→ {cpu_m}m (limit {cpu_m * LIMIT_FACTOR}m)"
        )
    else:
        cpu_m = DEFAULT_CPU_M
        cpu_line = f"CPU request: no server CPU measured, the default {cpu_m}m"
    rss, counted = memory_mi(report)
    memory = _round_up(rss * MEMORY_MARGIN, MEMORY_STEP_MI)
    machine = report.get("machine", {})
    model = report.get("model", {})
    return Sizing(
        replicas=replicas,
        max_replicas=replicas * MAX_REPLICAS_FACTOR,
        hpa_cpu_percent=round(HEADROOM * 100),
        resources=Resources(cpu_m, memory),
        lines=(
            f"bench: {source} ({report.get('mode', '?')} run of {report.get('created_at', '?')}, "
            f"{model.get('name', '?')}:{model.get('version', '?')}, "
            f"{machine.get('cores', '?')} cores {machine.get('cpu_model', '')})".rstrip(),
            f"per-replica throughput: {capacity:.0f} req/s at concurrency {level} "
            f"(p99 {row['p99_ms']:.1f} ms, {goal}" + "".join(f"; {o}" for o in others) + ")",
            f"replicas: ceil({target_rps:g} req/s / ({capacity:.0f} req/s × {HEADROOM} headroom))"
            f" = ceil({raw:.2f}) = {math.ceil(raw)}{floor}",
            cpu_line,
            f"HPA: CPU target {round(HEADROOM * 100)} % of the request (the headroom), "
            f"{replicas} to {replicas * MAX_REPLICAS_FACTOR} replicas",
            f"memory request: ({counted}) × {MEMORY_MARGIN} = {rss * MEMORY_MARGIN:.0f} MiB "
            f"→ {memory}Mi (limit {memory * LIMIT_FACTOR}Mi)",
        ),
        measured=True,
    )
