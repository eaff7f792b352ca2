"""`kit bench`: what the network hop costs, on your model and this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from scripts.common import HomeOption, app, console, kit_errors, settings_with


@app.command()
def bench(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="About a minute (CI's smoke test): concurrency 1 and 32, 1 s per point, one "
            "cold start each, no leak check. Without it, about six minutes: 1, 8, 32, 64, 3 s "
            "per point, four rounds, three cold starts, a 60 s leak check.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for bench.json, bench.md, bench.png.", show_default="<home>/bench"
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Measure the current model served five ways, side by side, here.

    In-process (LocalPredictor: the floor), the Gradio prototype (model in the UI process),
    the BentoML service that `kit promote` starts (called directly, and through
    RemotePredictor as the UI calls it), and a hand-written FastAPI app serving the same
    artifact with the same validation (scripts/bench/fastapi_baseline.py); and the service
    again, started a second time with its prediction log on (every answer logged), measured
    beside production: what the log costs. For each:
    throughput, p50/p95/p99 latency, errors, server CPU per request, peak RSS per process,
    cold start; plus `kit promote` end to end. Everything runs on 127.0.0.1 from a private
    copy of the kit home: your own promoted service is not touched.

    Writes bench.json, bench.md (tables, targets met or not, and why) and bench.png.
    Exit code 0 when the report is written, whether or not targets are met; 1 when a
    server of the bench failed.
    """
    from scripts.bench import render
    from scripts.bench.report import summarize
    from scripts.bench.runner import FULL, QUICK, Bench, workdir

    settings = settings_with(home=home)
    folder = out or settings.home / "bench"
    plan = QUICK if quick else FULL
    with kit_errors(), workdir() as scratch, console.status("preparing…") as status:

        def say(text: str) -> None:
            console.print(f"[dim]·[/] {text}")

        bench_run = Bench(settings, plan, scratch, say=say, progress=status.update)
        report = summarize(bench_run.run())
        written = render.write(report, folder)
    table = Table("target", "measured", "goal", "met", "why / details", title="targets")
    for target in report["targets"]:
        table.add_row(
            target["name"],
            render.format_value(target),
            target["goal"],
            render.format_met(target["met"]),
            target["note"],
        )
    console.print(table)
    for path in written:
        console.print(f"wrote {path}")
