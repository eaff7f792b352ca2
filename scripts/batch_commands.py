"""`kit batch`: offline predictions of a whole file into a SQLite database."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from scripts.common import BackendOption, HomeOption, app, console, kit_errors, settings_with


@app.command()
def batch(
    input_file: Annotated[Path, typer.Argument(help="A CSV or Parquet file of records.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The SQLite database to write, created if needed; with --engine spark, a "
            "Parquet folder, predictions.parquet by default.",
            show_default="predictions.db",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local: this process, into SQLite (resumable); spark: Apache Spark "
            "(local mode, or KIT_SPARK_MASTER), into Parquet. Spark needs pyspark and Java 17.",
        ),
    ] = "local",
    backend: BackendOption = "local",
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Rows read, predicted and committed at once.")
    ] = 10_000,
    key: Annotated[
        str | None, typer.Option("--key", help="An input column to store with each prediction.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Score every row of INPUT_FILE with the current model, into SQLite.

    Rows are read in chunks (memory stays flat), validated against the model's schema and
    predicted in batches. Invalid rows are not dropped: they go to the `rejects` table with
    their row number and field errors. A valid but unusual row (a value outside the range seen
    in the sample) is predicted, its messages in the `warnings` column. Each chunk is committed
    in one transaction; run the same command again after an interruption and it continues where
    it stopped, without duplicating or losing a row. Tables: jobs, predictions, rejects (see
    `sqlite3 OUT .schema`).

    Example: kit batch penguins.csv --out predictions.db --key id
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from app_production.backends import open_predictor
    from model.batch import run_batch

    settings = settings_with(home=home)
    if engine not in ("local", "spark"):
        console.print(f"[bold red]error:[/] --engine must be local or spark, got {engine!r}")
        raise typer.Exit(2)
    if engine == "spark":
        _spark(input_file, out or Path("predictions.parquet"), key, settings.home)
        return
    out = out or Path("predictions.db")
    columns = (
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with kit_errors(), Progress(*columns, console=console) as bar:
        predictor = open_predictor(backend, settings)
        task = bar.add_task("batch", total=None, rate="")

        def progress(total: int, done: int) -> Callable[[int], None]:
            bar.update(task, total=total, completed=done)
            began, scored = time.perf_counter(), [0]

            def advance(rows: int) -> None:
                scored[0] += rows
                rate = scored[0] / max(time.perf_counter() - began, 1e-9)
                bar.update(task, advance=rows, rate=f"{rate:,.0f} rows/s")

            return advance

        result = run_batch(
            input_file, out, predictor, chunk_size=chunk_size, key=key, progress=progress
        )
    resumed = (
        " (already scored: nothing to do)"
        if result.resumed_from == result.rows
        else f" (continued after row {result.resumed_from:,})"
        if result.resumed_from
        else ""
    )
    counts = _counts(result.predicted, result.warned, result.rejected)
    console.print(
        f"[green]✓[/] {result.rows:,} rows{resumed}: {counts} → {result.database} "
        f"(job {result.job_id}; {result.rows_per_s:,.0f} rows/s)"
    )
    job = result.job_id
    if result.warned:
        query = (
            "SELECT row_number, warnings FROM predictions "  # noqa: S608
            f"WHERE job_id={job} AND warnings IS NOT NULL"
        )
        console.print(f'warned rows and why: sqlite3 {result.database} "{query}"')
    if result.rejected:
        query = f"SELECT row_number, errors FROM rejects WHERE job_id={job}"  # noqa: S608
        console.print(f'rejected rows and why: sqlite3 {result.database} "{query}"')


def _counts(predicted: int, warned: int, rejected: int) -> str:
    """'N predicted (W with warnings: ...), R rejected', the same for both engines."""
    notes = (
        f" ({warned:,} with warnings: values outside the range seen in the sample"
        " or unseen categories)"
        if warned
        else ""
    )
    return f"{predicted:,} predicted{notes}, {rejected:,} rejected"


def _spark(input_file: Path, out: Path, key: str | None, home: Path) -> None:
    from app_production.spark_batch import run_spark_batch
    from model import artifact

    with kit_errors(), console.status("scoring with Spark…"):
        started = time.perf_counter()
        folder = artifact.ModelStore(home).current()
        artifact.verify(folder)
        result = run_spark_batch(input_file, out, folder, key=key)
    counts = _counts(result.predicted, result.warned, result.rejected)
    console.print(
        f"[green]✓[/] {result.rows:,} rows: {counts} → {result.output} "
        f"(Parquet; {time.perf_counter() - started:.1f} s with Spark)"
    )
    if result.warned:
        console.print("warned rows and why: the rows of its `warnings` column that are not null")
