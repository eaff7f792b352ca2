"""What the prediction log costs (issue 15): the logged target next to production, same run.

Both are starts of the same promoted Bento, running at the same time; the logged one writes
every answer to its prediction log. Throughput ratios are medians of same-round ratios (the
two ran back to back in each round); the log's completeness is its rows against the
predictions the logged target answered.
"""

from __future__ import annotations

from typing import Any

from scripts.bench.runner import LOGGED, PRODUCTION, Collected

GOAL_LEVEL = 32  # callers
MAX_LOSS_PCT = 5.0
TARGET = f"prediction log costs at most {MAX_LOSS_PCT:g}% throughput at {GOAL_LEVEL} callers"


def summary(data: Collected, table: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any] | None:
    """Per level: logged / production throughput (`ratio`, `loss_pct`) and server CPU per
    request of each; then the log's rows, counters and the predictions it had to log."""
    logged, production = table.get(LOGGED, {}), table.get(PRODUCTION, {})
    if not logged or data.prediction_log is None:
        return None
    levels: dict[str, dict[str, Any]] = {}
    for level, row in logged.items():
        ratio = row.get("vs_production")
        base = production.get(level, {})
        cpu, base_cpu = row["cpu_us_per_request"], base.get("cpu_us_per_request")
        levels[str(level)] = {
            "ratio": ratio,
            "loss_pct": None if ratio is None else (1 - ratio) * 100,
            "logged_rps": row["throughput_rps"],
            "production_rps": base.get("throughput_rps"),
            "logged_cpu_us_per_request": cpu,
            "production_cpu_us_per_request": base_cpu,
            "extra_cpu_us_per_request": None if cpu is None or base_cpu is None else cpu - base_cpu,
        }
    return {
        **data.prediction_log,
        "errors": sum(row["errors"] for row in logged.values()),
        "levels": levels,
    }


def target(cost: dict[str, Any] | None) -> dict[str, Any] | None:
    """The issue's goal: at most 5% less throughput at 32 callers, every answer logged (rows
    = predictions answered), and no failed prediction."""
    if cost is None or str(GOAL_LEVEL) not in cost["levels"]:
        return None
    at = cost["levels"][str(GOAL_LEVEL)]
    loss = at["loss_pct"]
    complete = cost["rows"] == cost["answered"]
    met = None if loss is None else loss <= MAX_LOSS_PCT and cost["errors"] == 0 and complete
    ratios = ", ".join(
        f"{level}: {row['ratio']:.2f}x"
        for level, row in cost["levels"].items()
        if row["ratio"] is not None
    )
    note = f"logged / production throughput, same rounds: {ratios}"
    if at["extra_cpu_us_per_request"] is not None:
        note += (
            f"; server CPU per request at {GOAL_LEVEL}: logged "
            f"{at['logged_cpu_us_per_request']:.0f} µs, production "
            f"{at['production_cpu_us_per_request']:.0f} µs "
            f"({at['extra_cpu_us_per_request']:+.0f} µs)"
        )
    note += f"; {rows_line(cost)}"
    return {
        "name": TARGET,
        "value": loss,
        "unit": "%",
        "goal": f"<= {MAX_LOSS_PCT:g}% loss, 0 errors, every answer logged",
        "met": met,
        "note": note,
    }


def rows_line(cost: dict[str, Any]) -> str:
    stats = cost.get("stats") or {}
    dropped = {k: v for k, v in stats.items() if k != "written" and v}
    said = f"the log wrote {cost['rows']} rows for {cost['answered']} predictions answered"
    said += f" ({', '.join(f'{k} {v}' for k, v in dropped.items())})" if dropped else ""
    return said + f"; {cost['errors']} errors"


def markdown(cost: dict[str, Any] | None) -> list[str]:
    """The bench.md section: the ratio and loss at each level, CPU per request, rows."""
    if cost is None:
        return []

    def num(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        "## Prediction log (every answer logged)",
        "",
        "Production and a second start of the same Bento with `KIT_PREDICTION_LOG` on "
        "(sample 1.0), both running, measured back to back in each round.",
        "",
        "| concurrency | production req/s | logged req/s | logged / production | throughput "
        "loss | server CPU µs/req production | logged | extra |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level, row in cost["levels"].items():
        lines.append(
            f"| {level} | {num(row['production_rps'], '.0f')} | {num(row['logged_rps'], '.0f')} "
            f"| {num(row['ratio'], '.3f')}x | {num(row['loss_pct'], '.1f')}% "
            f"| {num(row['production_cpu_us_per_request'], '.0f')} "
            f"| {num(row['logged_cpu_us_per_request'], '.0f')} "
            f"| {num(row['extra_cpu_us_per_request'], '+.0f')} |"
        )
    stats = cost.get("stats")
    counters = (
        "its counters (the serving worker, POST /metadata): "
        + ", ".join(f"{k} {v}" for k, v in stats.items())
        if stats
        else "its counters could not be read (POST /metadata)"
    )
    lines += [
        "",
        f"In {cost['files']} file(s), {rows_line(cost)}; {counters}.",
        "",
    ]
    return lines
