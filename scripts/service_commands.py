"""`kit promote`, `kit serve`, `kit stop`: the production side of the kit."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from model.errors import KitError, UsageError
from scripts.common import (
    HomeOption,
    app,
    console,
    kit_errors,
    port_in_use,
    settings_with,
    use_kit_bentoml_store,
)

if TYPE_CHECKING:
    from model.settings import KitSettings

SERVICE_PORT = 3000
HostOption = Annotated[
    str, typer.Option("--host", help="Listen address; beyond loopback needs KIT_API_KEY.")
]


class StepPrinter:
    """One line per step: ✓ title: detail (seconds), with a spinner while it runs."""

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        from app_production.promote import PromoteFailed

        detail = [""]
        started = time.perf_counter()
        try:
            with console.status(f"{title}…"):
                yield lambda text: detail.__setitem__(0, text)
        except KitError:
            console.print(f"[red]✗[/] {title} [dim]({time.perf_counter() - started:.1f} s)[/]")
            raise
        except Exception as exc:  # a library's error: name the step, keep the reason
            console.print(f"[red]✗[/] {title} [dim]({time.perf_counter() - started:.1f} s)[/]")
            raise PromoteFailed(f"{title} failed: {type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - started
        console.print(f"[green]✓[/] {title}: {detail[0]} [dim]({seconds:.1f} s)[/]")


def _refuse_exposure(host: str, has_key: bool) -> None:
    from app_prototype.sharing import ExposureRefused, is_loopback

    if not is_loopback(host) and not has_key:
        raise ExposureRefused(
            f"refusing to serve the model API on {host} without an API key: set KIT_API_KEY "
            "(clients send it in the X-API-Key header), or listen on 127.0.0.1"
        )


@app.command()
def promote(
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: the first free from 3000).")
    ] = None,
    host: HostOption = "127.0.0.1",
    version: Annotated[
        str | None,
        typer.Option("--version", help="Serve this version of the model.", show_default="current"),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Serve the current model as a BentoML API that the same UI calls.

    Steps: verify the artifact (sha256) → save it to the BentoML model store → build a Bento
    (with its Dockerfile) → start the service in the background → wait for /readyz → check
    that local and remote predictions are identical → record the endpoint for `kit demo`.
    Promoting again replaces the running service once the new one is ready; to change the
    version a running service answers with, without a restart, use `kit publish`.
    With KIT_API_KEY set, the API requires that key.
    """
    from scripts.demo import free_port

    settings = settings_with(home=home)
    with kit_errors():
        _refuse_exposure(host, settings.api_key is not None)
        use_kit_bentoml_store(settings)
        from app_production.promote import promote as run_promote

        if port is None:
            port = free_port(SERVICE_PORT, host)
        elif free_port(port, host) != port:  # something answers there (connect, not bind)
            if _already_served_on(settings, host, port, version):
                return
            raise port_in_use(port)
        started = time.perf_counter()
        state = run_promote(settings, StepPrinter(), host=host, port=port, version=version)
    url = state.url
    console.print(f"API: [bold]{url}/predict[/]   docs: {url}/docs   OpenAPI: {url}/docs.json")
    console.print(
        "next: [bold]kit demo[/] (the same UI, now calling the service) · `kit status` · `kit stop`"
    )
    console.print(f"promoted {state.model} in {time.perf_counter() - started:.1f} s")


def _already_served_on(settings: KitSettings, host: str, port: int, version: str | None) -> bool:
    """`kit promote --port P` where P is the promoted service's own port: True (said so) when
    it already serves the version asked for; a UsageError naming it when it serves another;
    False when something else holds P."""
    from app_production.backends import command_to_serve
    from app_production.promote import version_folder
    from app_production.state import is_ready, read_state
    from model import artifact

    state = read_state(settings)
    if state is None or (state.host, state.port) != (host, port):
        return False
    folder = version_folder(settings, version)
    wanted = f"{folder.parent.name}:{folder.name}"
    same_key = state.api_key_required == (settings.api_key is not None)
    if state.model == wanted:
        if same_key and is_ready(state.url):
            artifact.verify(folder)  # as promote's first step: a tampered artifact exits 3
            store = artifact.ModelStore(settings.home)
            if store.current() != folder:  # `--version V`: V answers in-process too
                store.set_current(folder.parent.name, folder.name)
            console.print(f"{wanted} is already served at {state.url} (pid {state.pid})")
            return True
        why = "is not answering" if same_key else "has another API key setting (KIT_API_KEY)"
        raise UsageError(
            f"port {port} is held by the promoted service ({wanted}), which {why}: `kit stop` "
            f"it, then promote again; or omit --port to start a new one on a free port"
        )
    held = f"port {port} is held by the promoted service, which answers with {state.model}"
    if same_key and command_to_serve(artifact.ModelStore(settings.home), state.model, folder) == (
        "kit publish"
    ):
        option = "" if version is None else f" --version {version}"
        raise UsageError(
            f"{held}: `kit publish{option}` makes it answer with {wanted} (same inputs, no "
            "restart); or omit --port: a new service starts on a free port and replaces it"
        )
    raise UsageError(
        f"{held}: omit --port (a new service starts on a free port and replaces it once "
        "ready), or `kit stop` it first"
    )


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = SERVICE_PORT,
    host: HostOption = "127.0.0.1",
    home: HomeOption = None,
) -> None:
    """Run the production service for the current model in the foreground (what a container
    runs); Ctrl-C stops it. `kit promote` does the same in the background, with checks."""
    settings = settings_with(home=home)
    with kit_errors():
        _refuse_exposure(host, settings.api_key is not None)
        use_kit_bentoml_store(settings)
        from app_production.promote import save_to_store, serve_foreground, verify_store_copy
        from model import artifact

        folder = artifact.ModelStore(settings.home).current()
        model_tag = save_to_store(folder, artifact.verify(folder))
        verify_store_copy(model_tag)  # what the service checks: refused now, not restarted forever
        console.print(f"serving {model_tag} on http://{host}:{port} (docs: /docs) · Ctrl-C stops")
        # A child, not exec: a worker that cannot load its model stops the server, and this
        # process then exits non-zero with the reason (a container stops instead of looping).
        code = serve_foreground(settings, model_tag, host, port)
    if code != 0:
        raise typer.Exit(code)


@app.command()
def stop(home: HomeOption = None) -> None:
    """Stop the service `kit promote` started (every process of it) and forget it."""
    from app_production.state import read_state, stop_service, wait_port_closed

    settings = settings_with(home=home)
    state = read_state(settings)
    if state is None:
        console.print("no promoted service to stop")
        return
    ended = stop_service(state)
    if ended:
        wait_port_closed(state.host, state.port)
        console.print(f"[green]✓[/] stopped {state.model} at {state.url} ({len(ended)} processes)")
    else:
        console.print(f"{state.model} at {state.url} was not running (pid {state.pid} is gone)")
    settings.state_file.unlink(missing_ok=True)
    console.print("the UI now uses the local model (`kit demo`), until the next `kit promote`")
