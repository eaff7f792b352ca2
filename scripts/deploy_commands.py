"""`kit deploy k8s`: Kubernetes manifests (kustomize base + overlays) for the current model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from model.errors import UsageError
from scripts.common import HomeOption, app, console, kit_errors, readable_help, settings_with

if TYPE_CHECKING:
    from app_production.k8s import DeploySpec
    from app_production.sizing import Sizing
    from model.artifact import Manifest
    from model.settings import KitSettings

deploy = typer.Typer(
    help="Write what deploys the current model elsewhere (`kit deploy k8s`).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(deploy, name="deploy")
HOST = re.compile(r"^(?=.{1,240}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@deploy.command("k8s")
def k8s(
    out: Annotated[Path, typer.Option("--out", help="Folder for base/ and overlays/.")] = Path(
        "deploy"
    ),
    replicas: Annotated[
        int | None,
        typer.Option(
            "--replicas", min=1, help="The service's prod replicas (HPA minimum).", show_default="2"
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="The UI's host name: adds an Ingress (TLS).")
    ] = None,
    kserve: Annotated[
        bool, typer.Option("--kserve", help="Also a KServe InferenceService (overlays/kserve).")
    ] = False,
    target_rps: Annotated[
        float | None,
        typer.Option("--target-rps", min=0.001, help="Size prod for this load, from `kit bench`."),
    ] = None,
    p99_ms: Annotated[
        float | None,
        typer.Option("--p99-ms", min=0.001, help="With --target-rps: the latency goal (p99)."),
    ] = None,
    ui: Annotated[str, typer.Option("--ui", help="The UI image's kind: gradio or streamlit.")] = (
        "gradio"
    ),
    bench: Annotated[
        Path | None,
        typer.Option("--bench", help="A bench.json of `kit bench`.", show_default="<home>/bench"),
    ] = None,
    channel: Annotated[
        str | None,
        typer.Option(
            "--channel",
            metavar="in-cluster|nats://HOST:PORT",
            help="Replicas serve the version published to a NATS broker: `in-cluster` writes "
            "one (base/channel), `nats://HOST:PORT` names an existing one. Publish with "
            "`KIT_CHANNEL_URL=nats://... kit publish --version vN`.",
            show_default="none: each replica serves its image's model",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write Kubernetes manifests for the current model: a kustomize base (the service's
    Deployment, Service, HPA and PodDisruptionBudget; the UI's Deployment and Service) and
    overlays dev and prod, whose fields name every value to change (namespace, images,
    replicas, host).

    Sized from measurements: --target-rps R [--p99-ms L] reads the last `kit bench` run and
    prints the arithmetic. Secrets are referenced, never written: the commands that make them
    are printed. The images are the ones `kit build` tags from the Bento `kit promote` built.

    With --channel, every replica follows the model version published to a NATS broker
    (`kit publish`), with no new image: --channel in-cluster writes the broker too.

    Example: kit deploy k8s --target-rps 500 --p99-ms 50 --host penguins.example.org
    """
    from app_production import kustomize
    from app_production.k8s import DeploySpec
    from model import artifact

    with kit_errors():
        _check_options(ui, host, replicas, target_rps, p99_ms)
        broker = _channel(channel)
        settings = settings_with(home=home)
        manifest = artifact.verify(artifact.ModelStore(settings.home).current())
        sizing = _sizing(settings, manifest, bench, replicas, target_rps, p99_ms)
        spec = DeploySpec(
            model=manifest.name,
            version=manifest.version,
            sizing=sizing,
            ui="streamlit" if ui == "streamlit" else "gradio",
            host=host,
            kserve=kserve,
            channel=broker,
        )
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file: give a folder")
        files = kustomize.render(spec)
    console.print(f"[bold]sizing[/] of {manifest.name}:{manifest.version} (prod):")
    for line in sizing.lines:
        console.print(f"  · {escape(line)}")
    for relative, text in files.items():
        path = out / relative
        replaced = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        console.print(f"{'replaced' if replaced else 'wrote'} {path}")
    _next_steps(spec, out)


def _check_options(
    ui: str, host: str | None, replicas: int | None, rps: float | None, p99: float | None
) -> None:
    if ui not in ("gradio", "streamlit"):
        raise UsageError(f"--ui must be 'gradio' or 'streamlit', got {ui!r}")
    if host is not None and not HOST.fullmatch(host):
        raise UsageError(
            f"--host must be a DNS name in lowercase, e.g. demo.example.org, got {host!r}"
        )
    if replicas is not None and rps is not None:
        raise UsageError("give --replicas or --target-rps, not both (--target-rps sizes replicas)")
    if p99 is not None and rps is None:
        raise UsageError("--p99-ms is the latency goal of --target-rps: give both")


def _channel(value: str | None) -> str | None:
    """in-cluster, or an existing broker's URL as the broker client reads it; else exit 2."""
    from app_production.broker_channel import broker_address
    from app_production.k8s import IN_CLUSTER

    if value is None or value == IN_CLUSTER:
        return value
    try:
        return broker_address(value)
    except UsageError as error:
        raise UsageError(
            f"--channel must be {IN_CLUSTER} (a NATS broker written into the base) or "
            f"nats://HOST:PORT (an existing broker, e.g. nats://nats.example.org:4222), "
            f"got {value!r}"
        ) from error


def _sizing(
    settings: KitSettings,
    manifest: Manifest,
    bench: Path | None,
    replicas: int | None,
    rps: float | None,
    p99: float | None,
) -> Sizing:
    from app_production import sizing

    if replicas is not None:
        return sizing.defaults(f"--replicas {replicas}: resources are the defaults", replicas)
    if rps is None:
        return sizing.defaults(
            "no --target-rps: the defaults (--target-rps R sizes from `kit bench`)"
        )
    path = bench or settings.home / "bench" / "bench.json"  # where `kit bench` writes it
    report = sizing.read_bench(path)
    if report is None:
        return sizing.defaults(f"no `kit bench` run at {path}: the defaults (run `kit bench`)")
    measured = report.get("model", {})
    if (measured.get("name"), measured.get("version")) != (manifest.name, manifest.version):
        console.print(
            f"[yellow]note:[/] {path} measured {measured.get('name')}:{measured.get('version')}, "
            f"not {manifest.name}:{manifest.version}: run `kit bench` for figures of this model"
        )
    return sizing.size(report, str(path), target_rps=rps, p99_ms=p99)


def _next_steps(spec: DeploySpec, out: Path) -> None:
    from app_production import kustomize
    from app_production.k8s import IN_CLUSTER

    prod = spec.namespace("prod")
    console.print("next:")
    console.print(
        f"  1. images: `kit promote` (builds the Bento), `kit build` ({spec.service_image}) "
        f"and `kit build --ui {spec.ui}` ({spec.ui_image}); "
        f"push them and set images[].newName in {out}/overlays/*/kustomization.yaml",
        markup=False,
    )
    console.print(f"  2. the namespace and the Secrets ({prod}; for the others see their overlay):")
    for command in kustomize.secret_commands(spec, prod):
        console.print(f"       {command}", markup=False)
    if spec.host:
        console.print(f"       {kustomize.tls_command(spec, prod)}", markup=False)
    console.print(f"  3. kubectl kustomize {out}/overlays/prod | kubectl apply -f -", markup=False)
    console.print(f"  4. the testers' USER:PASS: {kustomize.reveal_auth(spec, prod)}", markup=False)
    port = spec.ui_port
    where = (
        f"https://{spec.host}"
        if spec.host
        else f"kubectl -n {prod} port-forward svc/{spec.ui_name} {port}:80, then http://127.0.0.1:{port}"
    )
    console.print(f"  the UI: {where}", markup=False)
    if spec.kserve:
        console.print(
            f"  KServe instead of the service's Deployment: {out}/overlays/kserve "
            f"(namespace {spec.namespace('kserve')})",
            markup=False,
        )
    if spec.channel is not None:
        where = "in-cluster, base/channel" if spec.channel == IN_CLUSTER else "an existing broker"
        console.print(
            f"  the channel ({spec.channel_url}, {where}): publish a version to every replica"
            + (" (the port-forward in another shell)" if spec.channel == IN_CLUSTER else ""),
            markup=False,
        )
        for command in kustomize.publish_commands(spec, prod):
            console.print(f"       {command}", markup=False)


readable_help(deploy)
