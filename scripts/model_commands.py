"""`kit models`, `kit publish`, `kit rollback`: model versions, and which one is served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from scripts.common import (
    HomeOption,
    app,
    console,
    kit_errors,
    out,
    settings_with,
    use_kit_bentoml_store,
)

VersionOption = Annotated[
    str | None,
    typer.Option("--version", help="A version of the current model, e.g. v2 [default: current]."),
]


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per version.")] = False,
    home: HomeOption = None,
) -> None:
    """List the versions of the current model: when made, metrics, current and served."""
    from app_production.state import read_state
    from model import artifact

    settings = settings_with(home=home)
    with kit_errors():
        store = artifact.ModelStore(settings.home)
        current = store.current()
        name = current.parent.name
        state = read_state(settings)
        serving = state.model if state is not None else None
        rows = []
        for version in store.versions(name):
            folder = store.path(name, version)
            manifest = artifact.Manifest.from_file(folder / artifact.MANIFEST_FILE)
            rows.append(
                {
                    "version": version,
                    "created_at": manifest.created_at,
                    "source": manifest.source,
                    "metrics": manifest.metrics,
                    "current": folder == current,
                    "serving": serving == f"{name}:{version}",
                }
            )
    if as_json:
        for row in rows:
            out.print(json.dumps(row), markup=False)
        return
    table = Table("version", "created_at", "source", "first metric", "", title=f"{name} versions")
    for row in rows:
        metrics: dict[str, float] = row["metrics"]  # type: ignore[assignment]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in list(metrics.items())[:1])
        marks = [m for m in ("current", "serving") if row[m]]
        table.add_row(
            str(row["version"]), str(row["created_at"]), str(row["source"]), shown, " ".join(marks)
        )
    console.print(table)


@app.command()
def publish(version: VersionOption = None, home: HomeOption = None) -> None:
    """Make the running service answer with a version, without restarting it or the UI.

    The version is verified (sha256), copied to the BentoML store and published to the
    service, which loads it, warms it up and swaps it in between two batches; this command
    waits until the service answers with it. A version the service cannot serve (tampered,
    broken, other inputs) is refused: the old one keeps serving and the exit code is 7.
    """
    _publish(version, rollback=False, home=home)


@app.command()
def rollback(home: HomeOption = None) -> None:
    """Make the running service answer with the version it served before the current one."""
    _publish(None, rollback=True, home=home)


def _publish(version: str | None, *, rollback: bool, home: Path | None) -> None:
    settings = settings_with(home=home)
    use_kit_bentoml_store(settings)  # before bentoml is imported
    from app_production.publish import publish as run_publish

    with kit_errors(), console.status("publishing…"):
        done = run_publish(settings, version, rollback=rollback)
    if done.model == done.previous:
        console.print(f"the service already answers with {done.model}")
        return
    console.print(
        f"[green]✓[/] the service now answers with {done.model} (was {done.previous}; "
        f"switched in {done.seconds:.1f} s, no restart)"
    )
