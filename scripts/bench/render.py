"""Write a bench report: bench.json (everything), bench.md (tables), bench.png (the plot)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from scripts.bench import logcost
from scripts.bench.report import LABELS
from scripts.bench.runner import FASTAPI, LOGGED, PRODUCTION, PROTOTYPE, REMOTE

COLORS = {
    PRODUCTION: "#1f77b4",
    LOGGED: "#9467bd",
    FASTAPI: "#7f7f7f",
    PROTOTYPE: "#ff7f0e",
    REMOTE: "#2ca02c",
}
FILES = ("bench.json", "bench.md", "bench.png")


def _ms(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2f}"


def format_value(target: dict[str, Any]) -> str:
    value = target["value"]
    if value is None:
        return "—"
    if target.get("unit") == "%":
        return f"{value:.1f}%"
    if "vs FastAPI" in target["name"]:
        return f"{value:.2f}x"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def format_met(met: bool | None) -> str:
    return {True: "✅ yes", False: "❌ no", None: "— not measured"}[met]


def targets_table(report: dict[str, Any]) -> list[str]:
    """The targets as Markdown table lines: measured, goal, met, and why."""
    lines = ["| target | measured | goal | met | why / details |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(
            f"| {t['name']} | {format_value(t)} | {t['goal']} | {format_met(t['met'])} "
            f"| {t['note']} |"
        )
    return lines


def machine_line(report: dict[str, Any]) -> str:
    m = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return (
        f"{m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, {m['platform']}, "
        f"Python {m['python']}; load average before the run {m['load_average']}; {packages}"
    )


def markdown(report: dict[str, Any], plot: str | None = "bench.png") -> str:
    model, plan = report["model"], report["plan"]
    lines = [
        f"# `kit bench` ({report['mode']}): {model['name']}:{model['version']}, "
        f"{report['created_at']}",
        "",
        f"Model: {model['estimator']}. Machine: {machine_line(report)}.",
        "",
        f"Single-record requests on loopback, closed loop, {plan['duration_s']:g} s measured "
        f"after {plan['warmup_s']:g} s of warm-up, {plan['rounds']} round(s) per point; every "
        "request timed by the load generator (a separate process). Ratios are from this run.",
        "",
        "## Targets",
        "",
        *targets_table(report),
    ]
    lines += [
        "",
        "## Throughput and latency",
        "",
        "| path | concurrency | req/s | vs FastAPI | p50 ms | p95 ms | p99 ms | errors "
        "| server CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, levels in report["paths"].items():
        for level, row in levels.items():
            ratio = row.get("vs_fastapi")
            cpu = row["cpu_us_per_request"]
            lines.append(
                f"| {LABELS[name]} | {level} | {row['throughput_rps']:.0f} | "
                f"{'—' if ratio is None else f'{ratio:.2f}x'} | {_ms(row['p50_ms'])} | "
                f"{_ms(row['p95_ms'])} | {_ms(row['p99_ms'])} | {row['errors']} | "
                f"{'—' if cpu is None else f'{cpu:.0f}'} |"
            )
    floor = report["floor"]
    lines += ["", *logcost.markdown(report.get("prediction_log"))]
    lines += [
        "## In-process floor (no server)",
        "",
        f"LocalPredictor, one record per call: p50 {_ms(floor['single']['p50_ms'])} ms, "
        f"p99 {_ms(floor['single']['p99_ms'])} ms ({floor['single']['throughput_rps']:.0f} "
        f"calls/s); batches of {floor['batch']}: {floor['batched_rows_per_s']:,.0f} rows/s.",
        "",
        "## Servers",
        "",
        "| server | cold start (s, median) | cold starts (s) | peak RSS total (MB) | "
        "peak RSS per process (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, server in report["servers"].items():
        rss = dict(server["peak_rss_mb"])
        total = rss.pop("total", None)
        per = ", ".join(f"{k} {v:.0f}" for k, v in sorted(rss.items()))
        starts = ", ".join(f"{s:.1f}" for s in server["cold_start_s"])
        lines.append(
            f"| {LABELS[name]} | {server['cold_start_median_s']:.1f} | {starts} | "
            f"{'—' if total is None else f'{total:.0f}'} | {per} |"
        )
    lines += [
        "",
        f"`kit promote` end to end: {report['promote_s']:.1f} s. Importing scikit-learn and "
        f"pandas in a fresh interpreter: {report['import_floor_s']:.1f} s.",
    ]
    if plot:
        lines += ["", f"![throughput and latency against concurrency]({plot})"]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for name, levels in report["paths"].items():
        xs = [int(level) for level in levels]
        color, label = COLORS[name], LABELS[name]
        shown = label  # the logged line says what it costs, on the throughput side
        if name == LOGGED and (at := _goal_ratio(report)) is not None:
            shown += f": {at:.2f}x production at {logcost.GOAL_LEVEL}"
        left.plot(
            xs, [row["throughput_rps"] for row in levels.values()], "o-", color=color, label=shown
        )
        right.plot(
            xs, [row["p50_ms"] for row in levels.values()], "o-", color=color, label=f"{label} p50"
        )
        right.plot(
            xs,
            [row["p99_ms"] for row in levels.values()],
            "x--",
            color=color,
            alpha=0.7,
            label=f"{label} p99",
        )
    floor = report["floor"]["single"]
    right.axhline(
        floor["p50_ms"], color="black", linestyle=":", linewidth=1, label="in-process p50 (floor)"
    )
    for axis, title, unit in ((left, "Throughput", "requests/s"), (right, "Latency", "ms")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(report["plan"]["levels"], [str(x) for x in report["plan"]["levels"]])
        axis.set_xlabel("concurrent callers")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    right.set_yscale("log")
    left.legend(fontsize=7)
    right.legend(fontsize=6, ncol=2)
    model, m = report["model"], report["machine"]
    figure.suptitle(
        f"kit bench ({report['mode']}): {model['name']}:{model['version']} — "
        f"{m['cores']} cores, {m['cpu_model']}, Python {m['python']}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _goal_ratio(report: dict[str, Any]) -> float | None:
    cost = report.get("prediction_log") or {}
    ratio: float | None = cost.get("levels", {}).get(str(logcost.GOAL_LEVEL), {}).get("ratio")
    return ratio


def _finite(value: Any) -> Any:
    """NaN (a percentile of no samples) becomes null: the JSON stays standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write(report: dict[str, Any], folder: Path) -> list[Path]:
    """bench.json, bench.md and bench.png in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in FILES]
    paths[0].write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    paths[1].write_text(markdown(report))
    plot(report, paths[2])
    return paths
