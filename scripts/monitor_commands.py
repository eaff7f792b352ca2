"""`kit monitor`: have production inputs drifted from the data the model was made from?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scripts.common import HomeOption, app, console, kit_errors, out, settings_with

if TYPE_CHECKING:
    from app_production.monitor_report import MonitorReport

DRIFT_EXIT = 8
TOP = 5


@app.command()
def monitor(
    since: Annotated[
        str,
        typer.Option(
            "--since", help="Rows logged since: 30m, 1h, 2d, or an ISO time (UTC unless offset)."
        ),
    ] = "24h",
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            help="Log folder, or $KIT_PREDICTION_LOG.",
            show_default="<home>/prediction-log",
        ),
    ] = None,
    report_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="The HTML report to write.", show_default="<home>/monitor/report.html"
        ),
    ] = None,
    psi: Annotated[
        float, typer.Option("--psi", help="Drift above this PSI (above 0.1: watch).")
    ] = 0.25,
    out_of_range: Annotated[
        float,
        typer.Option(
            "--out-of-range",
            help="Share of values outside the expected range (or unseen categories) that is "
            "a drift.",
        ),
    ] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")] = False,
    home: HomeOption = None,
) -> None:
    """Drift of the logged inputs from the model's reference data.

    Compares what the service was asked with the inputs kept with each model version: per
    feature a drift score (PSI), the share out of the expected range, unseen categories; the
    predictions and latency per version. It writes an HTML report and prints a summary.

    The service logs when KIT_PREDICTION_LOG is set (on, or a folder). Exit code 0: no drift;
    8: a feature drifted beyond the thresholds, for a scheduled job to act on.

    Examples: kit monitor · kit monitor --since 2h --psi 0.2 --out drift.html · kit monitor
    --since 2026-12-01T08:00 --json
    """
    from app_production.monitor_report import build_report, parse_since, render_html
    from model.artifact import ModelStore
    from model.drift import Thresholds

    with kit_errors():
        settings = settings_with(home=home)
        folder = log or settings.prediction_log_dir or settings.home / "prediction-log"
        thresholds = Thresholds(psi=psi, out_of_range=out_of_range)
        start, window = parse_since(since)
        with console.status(f"reading the prediction log {folder}…"):
            report = build_report(
                ModelStore(settings.home),
                folder,
                since=start,
                window=window,
                thresholds=thresholds,
            )
            target = report_file or settings.home / "monitor" / "report.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_html(report), encoding="utf-8")
    if as_json:
        out.print(json.dumps({**report.to_json(), "report": str(target)}), markup=False)
    else:
        for line in summary(report):
            out.print(line, markup=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"report: {target}", markup=False)
    if report.drifted:
        raise typer.Exit(DRIFT_EXIT)


def summary(report: MonitorReport) -> list[str]:
    """The terminal's few lines: rows, window, the most drifted features and their scores."""
    versions = ", ".join(f"{v.version} ({v.rows})" for v in report.versions)
    lines = [f"{report.model}: {report.rows} prediction(s) {report.window}; versions {versions}"]
    ranked = report.ranked()
    if report.drifted:
        lines.append(f"drift in {len(report.drifted)} feature(s), the most drifted first:")
    else:
        lines.append("no drift beyond the thresholds; the highest scores:")
    several = len(report.versions) > 1
    for version, feature in ranked[:TOP]:
        where = f" ({version})" if several else ""
        extra = "; ".join(feature.reasons)
        lines.append(
            f"  {feature.name}{where}: PSI {feature.score:.3f}, {feature.verdict}"
            + (f" ({extra})" if extra and feature.verdict != "ok" else "")
        )
    return lines
