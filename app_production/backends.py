"""Choose the Predictor behind a UI or the CLI: the model in-process, or the promoted service."""

from __future__ import annotations

from app_production.state import read_state
from model.errors import ServiceUnavailable
from model.predictor import LocalPredictor, Predictor
from model.settings import Backend, KitSettings


def open_predictor(backend: Backend, settings: KitSettings) -> Predictor:
    """`local`: the current artifact in-process. `remote`: the service `kit promote` started.
    `auto`: remote when a service was promoted (and not stopped), else local."""
    state = read_state(settings)
    if backend == "local" or (backend == "auto" and state is None):
        return LocalPredictor.from_home(settings.home)
    if state is None:
        raise ServiceUnavailable(
            "no model service has been promoted yet: run `kit promote` first, "
            "or use --backend local to run the model in-process"
        )
    from app_production.client import RemotePredictor
    from app_production.state import is_ready

    if not is_ready(state.url):
        raise ServiceUnavailable(
            f"the promoted service {state.model} at {state.url} is not answering: start it again "
            "with `kit promote`, forget it with `kit stop`, or use --backend local"
        )

    def current_url() -> str | None:  # follows a service that `kit promote` replaced
        latest = read_state(settings)
        return latest.url if latest else None

    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return RemotePredictor(state.url, api_key=api_key, resolve_url=current_url)


def service_report(settings: KitSettings) -> dict[str, object] | None:
    """For `kit status`: where the promoted service is, whether it is ready, what it serves."""
    from app_production.state import is_ready, service_processes

    state = read_state(settings)
    if state is None:
        return None
    ready = is_ready(state.url)
    served: str | None = None
    problem = ""
    if ready:
        try:
            served = open_predictor("remote", settings).info().title
        except Exception as exc:  # shown, not fatal: status must report even a sick service
            problem = str(exc)
    return {
        "url": state.url,
        "docs": f"{state.url}/docs",
        "ready": ready,
        "running": bool(service_processes(state)),
        "pid": state.pid,
        "cold_start_s": state.ready_after_s,
        "model_in_store": state.model,
        "model_in_service": served,
        "api_key_required": state.api_key_required,
        "log": state.log,
        "problem": problem,
    }
