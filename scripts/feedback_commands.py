"""`kit feedback`: what testers said ("Wrong? Tell us"), per version; export it to retrain."""

from __future__ import annotations

import csv
import inspect
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from scripts.common import (
    HomeOption,
    app,
    console,
    kit_errors,
    one_line_paragraphs,
    out,
    readable_help,
    settings_with,
)

if TYPE_CHECKING:
    from model.feedback import Feedback, VersionSummary
    from model.schema import ModelSchema

feedback = typer.Typer(
    invoke_without_command=True,
    rich_markup_mode="rich",
)
app.add_typer(feedback, name="feedback")
ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="A model's name.", show_default="the current model"),
]


@feedback.callback()
def summary(
    ctx: typer.Context,
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    home: HomeOption = None,
) -> None:
    """What testers said about predictions, per model version.

    Per model version: how many, the share marked wrong, and a confusion table for a
    classifier (what it predicted against what testers said it is) or the mean error for a
    regressor; then the latest comments. `kit feedback export --out FILE.csv` writes the rows
    to retrain with.

    Feedback comes from "Wrong? Tell us" in both demo UIs: saved in <home>/feedback.sqlite, or
    through the model service when the UI calls it (`kit promote` points it at the same file).

    Example: kit feedback --model penguins
    """
    if ctx.invoked_subcommand is not None:
        return
    from model.feedback import summarise

    with kit_errors():
        name, _, rows = _rows(model, home)
    summaries = summarise(rows)
    if as_json:
        out.print(json.dumps([asdict(s) for s in summaries]), markup=False)
        return
    if not rows:
        console.print(
            f'no feedback on {name} yet: testers send it with "Wrong? Tell us" under a '
            "prediction in `kit demo`"
        )
        return
    for summary_ in summaries:
        out.print(_version_table(summary_))
    comments = [r for r in rows if r.comment][-5:]
    if comments:
        out.print("[bold]latest comments[/]")
        for row in comments:
            who = f" ({escape(row.user)})" if row.user else ""
            out.print(f"  {row.created_at} {row.version}{who}: {escape(row.comment)}")


@feedback.command("export")
def export(
    out_file: Annotated[
        Path, typer.Option("--out", help="The CSV file to write (replaced if it exists).")
    ],
    model: ModelOption = None,
    home: HomeOption = None,
) -> None:
    """Write the feedback as training rows: the model's input columns plus the correct target
    (the column named as the model's target), one row per correction, oldest first.

    Example: kit feedback export --out corrections.csv
    """
    with kit_errors():
        name, schema, rows = _rows(model, home)
        if out_file.is_dir():
            from model.errors import UsageError

            raise UsageError(f"--out {out_file} is a folder: give a file name, e.g. feedback.csv")
    target = schema.target or "target"
    columns = [*schema.feature_names, target]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with out_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(_training_row(schema, row, target))
    console.print(
        f"[green]✓[/] wrote {len(rows)} row(s) of {name} to {out_file} "
        f"(columns: the {len(schema.features)} inputs, then {target})"
    )


def _training_row(schema: ModelSchema, row: Feedback, target: str) -> dict[str, object]:
    return {**{f: row.record.get(f) for f in schema.feature_names}, target: row.correct}


def _rows(model: str | None, home: Path | None) -> tuple[str, ModelSchema, list[Feedback]]:
    """The model's name, its current schema, and its feedback rows."""
    from model import artifact
    from model.feedback import FeedbackStore

    settings = settings_with(home=home)
    store = artifact.ModelStore(settings.home)
    if model is None:
        folder = store.current()
    else:
        versions = store.versions(artifact.check_name(model))
        if not versions:
            from model.errors import UsageError

            raise UsageError(f"no model {model!r} in {store.models_dir}: see `kit models`")
        folder = store.path(model, versions[-1])
    manifest = artifact.Manifest.from_file(folder / artifact.MANIFEST_FILE)
    return manifest.name, manifest.schema_, FeedbackStore(settings.feedback_db).rows(manifest.name)


def _version_table(summary: VersionSummary) -> Table:
    title = (
        f"{summary.model}:{summary.version} · {summary.count} feedback · "
        f"{summary.wrong_share:.0%} marked wrong"
    )
    if summary.mean_abs_error is not None:
        title += f" · mean error {summary.mean_abs_error:.4g}"
    table = Table(title=title, title_justify="left")
    if summary.confusion is None:
        table.add_column("regression: no confusion table")
        return table
    correct = sorted({c for row in summary.confusion.values() for c in row})
    table.add_column("predicted ↓ / testers say →")
    for label in correct:
        table.add_column(escape(label), justify="right")
    for predicted, counts in summary.confusion.items():
        table.add_row(escape(predicted), *(str(counts.get(c, 0)) for c in correct))
    return table


readable_help(feedback)
if feedback.registered_callback is not None:  # the group's own help is the callback's
    feedback.registered_callback.help = one_line_paragraphs(inspect.getdoc(summary) or "")
