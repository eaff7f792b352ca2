"""`kit models`, `kit use`, `kit publish`, `kit rollback`: the models and versions in the
store, which one is current, and which one the service answers with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from scripts.common import (
    ChannelOption,
    HomeOption,
    app,
    console,
    kit_errors,
    out,
    settings_with,
    use_kit_bentoml_store,
)

if TYPE_CHECKING:
    from model.artifact import Manifest, ModelStore
    from model.metrics import Metric
    from model.settings import KitSettings

VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version", help="A version of the current model, e.g. v2.", show_default="current"
    ),
]


@dataclass(frozen=True)
class VersionRow:
    """One version in the store, and whether it is the current one and the served one."""

    manifest: Manifest
    current: bool
    serving: bool

    @property
    def metric(self) -> Metric | None:
        from model.metrics import main_metric

        return main_metric(self.manifest.metrics)

    def to_json(self) -> dict[str, object]:
        m = self.manifest
        return {
            "name": m.name,
            "version": m.version,
            "created_at": m.created_at,
            "source": m.source,
            "metrics": m.metrics,
            "main_metric": metric_json(self.metric),
            "current": self.current,
            "serving": self.serving,
        }


def store_rows(settings: KitSettings) -> list[VersionRow]:
    """Every version of every model in the store, by name then version."""
    from app_production.state import read_state
    from model import artifact

    store = artifact.ModelStore(settings.home)
    current = store.current()
    state = read_state(settings)
    served = state.model if state is not None else None
    rows = []
    for name in store.names():
        for version in store.versions(name):
            folder = store.path(name, version)
            manifest = artifact.Manifest.from_file(folder / artifact.MANIFEST_FILE)
            rows.append(VersionRow(manifest, folder == current, served == f"{name}:{version}"))
    return rows


def metric_json(metric: Metric | None) -> dict[str, object] | None:
    """A metric with its basis, for --json outputs (None when nothing was measured)."""
    if metric is None:
        return None
    return {
        "name": metric.name,
        "value": metric.value,
        "basis": metric.basis,
        "optimistic": metric.optimistic,
    }


def metric_text(metric: Metric | None) -> str:
    """'accuracy 0.991', or 'r2 0.912 (sample)' when measured on the import sample."""
    if metric is None:
        return "-"
    return metric.text() + (" (sample)" if metric.optimistic else "")


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per version.")] = False,
    home: HomeOption = None,
) -> None:
    """List every model and version in the store: when made, main metric, current and served
    (the version the promoted service answers with). `kit use NAME[:VERSION]` switches."""
    settings = settings_with(home=home)
    with kit_errors():
        rows = store_rows(settings)
    if as_json:
        for row in rows:
            out.print(json.dumps(row.to_json()), markup=False)
        return
    table = Table("model", "version", "created (UTC)", "source", title="models")
    table.add_column("main metric", no_wrap=True)
    table.add_column("")
    for row in rows:
        marks = [mark for mark, on in (("current", row.current), ("served", row.serving)) if on]
        m = row.manifest
        table.add_row(
            m.name,
            m.version,
            m.created_at[:16].replace("T", " "),  # minutes, UTC: the full stamp is in --json
            m.source,
            metric_text(row.metric),
            " ".join(marks),
        )
    out.print(table)
    optimistic = next((r.metric for r in rows if r.metric and r.metric.optimistic), None)
    if optimistic is not None:
        out.print(f"(sample): measured {optimistic.basis}: an optimistic figure")


@app.command()
def use(
    model: Annotated[
        str,
        typer.Argument(
            help="NAME or NAME:VERSION of a model in the store (NAME alone: its latest version)."
        ),
    ],
    home: HomeOption = None,
) -> None:
    """Make a model of the store the current one, e.g. `kit use penguins` or `kit use
    penguins:v1`: `kit demo`, `kit predict` and `kit promote` then use it. No retraining; the
    artifact is verified (sha256) first."""
    from model import artifact
    from model.metrics import main_metric

    settings = settings_with(home=home)
    with kit_errors():
        store = artifact.ModelStore(settings.home)
        name, version = _resolve(store, model)
        manifest = artifact.verify(store.path(name, version))
        store.set_current(name, version)
    detail = metric_text(main_metric(manifest.metrics))
    console.print(
        f"[green]✓[/] current model: [bold]{name}:{version}[/] ({manifest.schema_.task}; {detail})"
    )
    note_if_served_differs(settings)


def _resolve(store: ModelStore, text: str) -> tuple[str, str]:
    """NAME[:VERSION] of a model in the store (default: its latest version)."""
    from model.errors import UsageError

    name, _, version = text.partition(":")
    names = store.names()
    if name not in names:
        known = "; ".join(f"{n} ({', '.join(store.versions(n))})" for n in names)
        raise UsageError(
            f"no model {name!r} in {store.models_dir}; models: {known}"
            if names
            else f"no model in {store.models_dir} yet: `kit train` or `kit import` makes one"
        )
    versions = store.versions(name)
    if version and version not in versions:
        raise UsageError(f"no version {version!r} of {name}; versions: {', '.join(versions)}")
    return name, version or versions[-1]


def note_if_served_differs(settings: KitSettings) -> None:
    """After the current model changed: one line if the promoted service answers with another
    one, and what to run."""
    from app_production.backends import served_mismatch

    mismatch = served_mismatch(settings)
    if mismatch is not None:
        console.print(
            f"[yellow]note:[/] {escape(str(mismatch))}, so `kit demo` and `kit predict` use the "
            f"local model; {escape(mismatch.fix)}"
        )


@app.command()
def publish(
    version: VersionOption = None, channel: ChannelOption = None, home: HomeOption = None
) -> None:
    """Make every replica answer with a version, with no restart.

    The version is verified (sha256) and published: on this machine to the service `kit
    promote` started, or with --channel / KIT_CHANNEL_URL to a broker (NATS JetStream) that
    every replica follows, which receives the artifact once. Each replica downloads it,
    verifies it, warms it up and swaps it in between two batches; this command waits until
    every live replica serves it and prints one line per replica. A version a replica cannot
    serve (tampered, broken, other inputs) is refused: every replica goes back to the version
    before and the exit code is 7.

    Example: KIT_CHANNEL_URL=nats://127.0.0.1:4222 kit publish --version v2
    """
    _publish(version, rollback=False, channel=channel, home=home)


@app.command()
def rollback(channel: ChannelOption = None, home: HomeOption = None) -> None:
    """Make every replica go back to the version published before.

    The same steps as `kit publish`: verified, published, waited for on every live replica
    (one line each); exit code 7 if a replica refuses it.
    """
    _publish(None, rollback=True, channel=channel, home=home)


def _publish(
    version: str | None, *, rollback: bool, channel: str | None, home: Path | None
) -> None:
    settings = settings_with(home=home)
    use_kit_bentoml_store(settings)  # before bentoml is imported
    from app_production.publish import PublishRefused
    from app_production.publish import publish as run_publish

    with kit_errors():
        try:
            with console.status("publishing… (waiting for every replica)"):
                done = run_publish(settings, version, rollback=rollback, channel_url=channel)
        except PublishRefused as refused:
            for line in refused.lines:
                console.print(f"  {escape(line)}")
            raise
    if done.model == done.previous:
        console.print(f"{done.where} already answers with {done.model}")
        return
    for line in done.lines:
        console.print(f"  [green]✓[/] {escape(line)}")
    if not done.lines:
        console.print(
            f"[green]✓[/] published {done.model} (was {done.previous}) on {done.where}; no "
            "replica follows it now: each serves it from its first request when it starts"
        )
        return
    who = "the service" if done.where == "the service" else f"every replica ({done.replicas})"
    console.print(
        f"[green]✓[/] {who} now answers with {done.model} (was {done.previous}; "
        f"switched in {done.seconds:.1f} s, no restart); it is the current model too"
    )
