"""`kit`: train or import a model, demo it, predict, check its status. Thin: logic lives in
model/, app_prototype/ and app_production/; this file parses options and prints."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from scripts.common import (
    BackendOption,
    ChannelOption,
    HomeOption,
    app,
    console,
    kit_errors,
    out,
    readable_help,
)
from scripts.common import settings_with as _settings

if TYPE_CHECKING:
    from app_production.channel_protocol import ReplicaState
    from model.settings import KitSettings


@app.command()
def train(home: HomeOption = None) -> None:
    """Train the example penguins classifier into a new model version."""
    from model.artifact import ModelStore
    from model.train import train_example

    with kit_errors(), console.status("training the example model (palmerpenguins)…"):
        manifest = train_example(ModelStore(_settings(home=home).home))
    acc, base = manifest.metrics["test_accuracy"], manifest.metrics["test_baseline_accuracy"]
    console.print(
        f"[green]✓[/] trained [bold]{manifest.name}:{manifest.version}[/] "
        f"({manifest.estimator}); held-out accuracy {acc:.3f} (majority-class baseline {base:.3f})"
    )
    from scripts.model_commands import note_if_served_differs

    note_if_served_differs(_settings(home=home))


@app.command("import")
def import_(
    model_file: Annotated[
        Path,
        typer.Argument(help="A fitted scikit-learn estimator or Pipeline saved with joblib.dump."),
    ],
    sample: Annotated[
        Path, typer.Option("--sample", help="A CSV of real rows of the model's inputs.")
    ],
    target: Annotated[
        str | None, typer.Option("--target", help="The sample's label column, left out.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Model name (default: the file's stem).")
    ] = None,
    annotations: Annotated[
        Path | None,
        typer.Option(
            "--annotations",
            help="TOML or YAML file: title, descriptions, units, hard limits, class names.",
        ),
    ] = None,
    holdout: Annotated[
        Path | None,
        typer.Option(
            "--holdout",
            help="CSV of held-out rows (the sample's columns and --target): honest metrics.",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Register your own model: infer its schema from a sample and save it in the artifact format.

    Example: kit import churn.joblib --sample customers.csv --target churned --name churn
    --annotations churn.toml --holdout held-out.csv
    """
    from model.artifact import ModelStore
    from model.importer import import_model

    with kit_errors(), console.status(f"importing {model_file}…"):
        report = import_model(
            ModelStore(_settings(home=home).home),
            model_file,
            sample,
            target=target,
            name=name,
            annotations=annotations,
            holdout=holdout,
        )
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    m = report.manifest
    features = ", ".join(f"{f.name} ({f.kind})" for f in m.schema_.features)
    console.print(
        f"[green]✓[/] imported [bold]{m.name}:{m.version}[/] ({m.schema_.task}): {features}"
    )
    console.print("next: [bold]kit demo[/] or [bold]kit predict --json '<record>'[/]")
    from scripts.model_commands import note_if_served_differs

    note_if_served_differs(_settings(home=home))


@app.command()
def predict(
    json_text: Annotated[
        str,
        typer.Option(
            "--json", help="One record (a JSON object) or a list of records; '-' reads stdin."
        ),
    ],
    backend: BackendOption = "auto",
    home: HomeOption = None,
) -> None:
    """Print one JSON line per prediction.

    Example: kit predict --json '{"island": "Dream", "bill_length_mm": 39.1, ...}'
    """
    from app_production.backends import open_predictor

    text = sys.stdin.read() if json_text == "-" else json_text
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        console.print(f"[bold red]error:[/] --json is not valid JSON ({exc})")
        raise typer.Exit(2) from exc
    except RecursionError as exc:  # [[[[…]]]] thousands deep: no record is nested like that
        console.print("[bold red]error:[/] --json is nested too deeply to be records")
        raise typer.Exit(2) from exc
    records = payload if isinstance(payload, list) else [payload]
    with kit_errors():
        settings = _settings(home=home)
        predictions = open_predictor(backend, settings).predict(records)
    for prediction in predictions:
        out.print(json.dumps(prediction.to_json()), markup=False)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    channel: ChannelOption = None,
    home: HomeOption = None,
) -> None:
    """Show the current model (name, version, sha256 check, metrics and what they were measured
    on) and the backend: the promoted service's URL, health, the model version in the store and
    in the service, and whether the service answers with another model than the current one;
    then the replicas following the channel (the service's, or the broker's with --channel /
    KIT_CHANNEL_URL) with the version each serves."""
    from app_production.backends import served_mismatch, service_report
    from model.artifact import Manifest, ModelStore, verify
    from model.errors import ArtifactError
    from model.metrics import describe, main_metric
    from scripts.model_commands import metric_json

    settings = _settings(home=home)
    with kit_errors():
        folder = ModelStore(settings.home).current()
    try:
        manifest, sha_ok, problem = verify(folder), True, ""
    except ArtifactError as exc:
        manifest, sha_ok, problem = Manifest.from_file(folder / "manifest.json"), False, str(exc)
    service = service_report(settings)
    mismatch = served_mismatch(settings)
    replicas, channel_problem = _replicas(settings, manifest.name, channel)
    report = {
        "name": manifest.name,
        "version": manifest.version,
        "sha256": manifest.sha256,
        "sha256_ok": sha_ok,
        "created_at": manifest.created_at,
        "estimator": manifest.estimator,
        "task": manifest.schema_.task,
        "metrics": manifest.metrics,
        "main_metric": metric_json(main := main_metric(manifest.metrics)),
        "path": str(folder),
        "backend": "remote" if service is not None and mismatch is None else "local",
        "service": service,
        "mismatch": mismatch.to_json() if mismatch else None,  # then `auto` runs it in-process
        "channel": replicas[0] if replicas else None,
        "replicas": [asdict(r) for r in replicas[1]] if replicas else None,
    }
    if as_json:
        out.print(json.dumps(report), markup=False)
    else:
        table = Table(title="current model", show_header=False)
        for key in ("name", "version", "estimator", "task", "created_at", "path"):
            table.add_row(key, str(report[key]))
        table.add_row(
            "sha256",
            f"{manifest.sha256[:16]}… " + ("[green]ok[/]" if sha_ok else "[red]MISMATCH[/]"),
        )
        measured = describe(manifest.metrics) or "none measured"
        if main is not None and main.optimistic:
            measured += ": [yellow]optimistic[/]"
        table.add_row("metrics", measured)
        for key, value in manifest.metrics.items():
            table.add_row(f"  {key}", f"{value:.4g}")
        out.print(table)
        out.print(_service_table(service, mismatch.to_json()["message"] if mismatch else None))
        if replicas is not None:
            out.print(_replica_table(*replicas))
    if channel_problem:
        console.print(f"[bold red]error:[/] {escape(channel_problem)}")
        raise typer.Exit(4)
    if not sha_ok:
        console.print(f"[bold red]error:[/] {problem}")
        raise typer.Exit(3)
    if service is not None and not service["supervisor_alive"]:
        console.print(f"[bold red]error:[/] {supervisor_gone(service)}")
        raise typer.Exit(4)


def _replicas(
    settings: KitSettings, model: str, channel: str | None
) -> tuple[tuple[str, list[ReplicaState]] | None, str]:
    from app_production.publish import live_replicas
    from model.errors import KitError

    try:
        return live_replicas(settings, model, channel), ""
    except KitError as exc:  # a broker named but not reachable: said, with exit 4
        return None, str(exc)


def _replica_table(where: str, replicas: list[ReplicaState]) -> Table:
    table = Table(title=f"replicas ({where})")
    for column in ("replica", "serves", "refused", "reported"):
        table.add_column(column)
    for replica in replicas:
        refused = replica.refused or {}
        why = f"{refused['model']}: {refused['reason']}" if refused else "-"
        cells = (replica.replica, replica.serving, why, replica.heartbeat)
        table.add_row(*(escape(cell) for cell in cells))
    if not replicas:
        table.add_row("none live", "-", "-", "-")
    return table


def supervisor_gone(service: dict[str, object]) -> str:
    pid, orphans = service["pid"], service["orphans"]
    if orphans:
        return (
            f"the service's supervisor (pid {pid}) is gone; its worker {orphans} still answers "
            "but nothing would restart it: run `kit stop`, then `kit promote`"
        )
    return f"the service (pid {pid}) is gone: run `kit promote` again, or `kit stop` to forget it"


def _service_table(service: dict[str, object] | None, mismatch: str | None) -> Table:
    table = Table(title="backend", show_header=False)
    if service is None:
        table.add_row("backend", "local (model in-process): no service promoted; `kit promote`")
        return table
    if mismatch is None:
        table.add_row("backend", f"remote: {service['url']}")
    else:
        table.add_row("backend", f"local: the service at {service['url']} serves another model")
    health = "[green]ready[/]" if service["ready"] else "[red]not answering[/]"
    if not service["supervisor_alive"]:
        orphaned = " (an orphaned worker answers)" if service["ready"] else ""
        health = f"[red]supervisor gone[/]{orphaned}"
    table.add_row("health", health + ("" if service["running"] else " (process gone)"))
    table.add_row("model in store", str(service["model_in_store"]))
    table.add_row("model in service", str(service["model_in_service"] or "-"))
    table.add_row("API docs", str(service["docs"]))
    table.add_row("API key", "required" if service["api_key_required"] else "not required")
    if service["problem"]:
        table.add_row("problem", str(service["problem"]))
    if mismatch is not None:
        table.add_row("mismatch", f"[yellow]{escape(mismatch)}[/]")
    return table


@app.command()
def demo(
    ui: Annotated[str, typer.Option("--ui", help="gradio or streamlit.")] = "gradio",
    backend: BackendOption = "auto",
    host: Annotated[
        str, typer.Option("--host", help="Address to bind. Anything but loopback needs --auth.")
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: Gradio 7860+, Streamlit 8501).")
    ] = None,
    share: Annotated[
        bool,
        typer.Option(
            "--share",
            help="Gradio: ask for a public link, else fall back to the LAN. "
            "Streamlit: serve on the LAN. Needs --auth.",
        ),
    ] = False,
    share_server: Annotated[
        str | None,
        typer.Option("--share-server", help="Gradio: HOST:PORT of your own tunnel server."),
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            help="USER:PASS asked of testers (or $KIT_AUTH). Never printed.",
            show_default=False,
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Run the demo UI generated from the model's schema, until Ctrl-C.

    Examples: kit demo · kit demo --ui streamlit

    For testers: kit demo --share --auth tester:s3cret
    """
    from model.settings import parse_auth
    from scripts.demo import run_demo

    if ui not in ("gradio", "streamlit"):
        console.print(f"[bold red]error:[/] --ui must be 'gradio' or 'streamlit', got {ui!r}")
        raise typer.Exit(2)
    with kit_errors():
        settings = _settings(home=home, backend=backend)
        if auth is not None:
            parse_auth(auth)
        credentials = auth or (settings.auth.get_secret_value() if settings.auth else None)
        code = run_demo(
            ui,
            settings,
            host=host,
            port=port,
            share=share,
            share_server=share_server,
            auth=parse_auth(credentials) if credentials else None,
            say=console.print,
        )
    raise typer.Exit(code)


# The production commands (promote, serve, stop) register on the same app, listed after these.
from scripts import (  # noqa: E402, F401
    annotate_commands,
    batch_commands,
    build_commands,
    deploy_commands,
    feedback_commands,
    model_commands,
    monitor_commands,
    service_commands,
)
from scripts.bench import command  # noqa: E402, F401

readable_help(app)


def main() -> None:  # pragma: no cover - the console script
    app()  # its callback turns the frameworks' usage statistics off before any command


if __name__ == "__main__":  # pragma: no cover
    main()
