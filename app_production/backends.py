"""Choose the Predictor behind a UI or the CLI: the model in-process, or the promoted service.

The service is used only while it answers with the current model (same name and version, read
from the state file and current.json: no network call); otherwise `auto` says so and runs the
current model in-process, and `remote` refuses with what to run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app_production.state import ServiceState, read_state
from model import artifact
from model.errors import ArtifactError, ServiceUnavailable

if TYPE_CHECKING:  # model.predictor imports pandas: only a prediction needs it (not kit status)
    from app_production.client import RemotePredictor
    from model.feedback import FeedbackSink
    from model.predictor import Predictor
    from model.settings import Backend, KitSettings

Say = Callable[[str], None]


@dataclass(frozen=True)
class ServedMismatch:
    """The promoted service answers with another model than the current one."""

    served: str  # "penguins:v1", as the state file records it (`kit publish` keeps it true)
    current: str  # "body-mass:v1", as current.json names it
    command: str  # what makes the service answer with the current model

    def __str__(self) -> str:
        return (
            f"the promoted service answers with {self.served}, not the current model {self.current}"
        )

    @property
    def fix(self) -> str:
        how = "same inputs: no restart" if self.command == "kit publish" else "a new service"
        return (
            f"`{self.command}` makes it answer with {self.current} ({how}), "
            f"`kit use {self.served}` goes back to the served model"
        )

    def to_json(self) -> dict[str, str]:
        return {
            "served": self.served,
            "current": self.current,
            "command": self.command,
            "message": f"{self}; {self.fix}",
        }


def served_mismatch(
    settings: KitSettings, state: ServiceState | None = None
) -> ServedMismatch | None:
    """Whether the promoted service (the state file's model) is not the current model."""
    state = state or read_state(settings)
    if state is None:
        return None
    store = artifact.ModelStore(settings.home)
    try:
        current = store.current()
    except ArtifactError:
        return None  # no current model: nothing to compare (commands say so themselves)
    tag = f"{current.parent.name}:{current.name}"
    if state.model == tag:
        return None
    return ServedMismatch(state.model, tag, command_to_serve(store, state.model, current))


def command_to_serve(store: artifact.ModelStore, served: str, current: Path) -> str:
    """`kit publish` swaps another version with the same inputs into the running service;
    another model, or other inputs, needs a new service: `kit promote`."""
    name, _, version = served.partition(":")
    if name != current.parent.name:
        return "kit promote"
    try:
        theirs = artifact.Manifest.from_file(store.path(name, version) / artifact.MANIFEST_FILE)
        mine = artifact.Manifest.from_file(current / artifact.MANIFEST_FILE)
    except ArtifactError:
        return "kit promote"
    return "kit publish" if mine.schema_.same_inputs(theirs.schema_) else "kit promote"


def note_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def open_predictor(backend: Backend, settings: KitSettings, say: Say | None = None) -> Predictor:
    """`local`: the current artifact in-process. `remote`: the service `kit promote` started,
    if it answers with the current model. `auto`: remote when a service was promoted (and not
    stopped) and answers with the current model, else local; when it answers with another
    model, `say` (default: stderr) gets one line saying so. With KIT_SERVICE_URL set, `remote`
    and `auto` call that service (where no state file exists: a container)."""
    from model.predictor import LocalPredictor

    if backend != "local" and settings.service_url:  # KIT_SERVICE_URL (the UI image): no state
        return _remote_at(settings.service_url, settings)
    state = read_state(settings)
    if backend == "local" or (backend == "auto" and state is None):
        return LocalPredictor.from_home(settings.home)
    if state is None:
        raise ServiceUnavailable(
            "no model service has been promoted yet: run `kit promote` first, "
            "or use --backend local to run the model in-process"
        )
    mismatch = served_mismatch(settings, state)
    if mismatch is not None:
        if backend == "remote":
            raise ServiceUnavailable(
                f"{mismatch} (at {state.url}): {mismatch.fix}; or use --backend local"
            )
        (say or note_to_stderr)(f"note: {mismatch}: using the local model; {mismatch.fix}")
        return LocalPredictor.from_home(settings.home)
    from app_production.state import is_ready

    if not is_ready(state.url):
        raise ServiceUnavailable(
            f"the promoted service {state.model} at {state.url} is not answering: start it again "
            "with `kit promote`, forget it with `kit stop`, or use --backend local"
        )
    return _remote(state, settings)


def open_feedback(predictor: Predictor, settings: KitSettings) -> FeedbackSink:
    """Where the UI's "Wrong? Tell us" goes: through the service a remote predictor calls
    (its POST /feedback: next to the model), else the kit home's feedback database."""
    from app_production.client import RemoteFeedback, RemotePredictor
    from model.feedback import FeedbackStore

    if isinstance(predictor, RemotePredictor):
        return RemoteFeedback(predictor)
    return FeedbackStore(settings.feedback_db)


def _remote(state: ServiceState, settings: KitSettings) -> RemotePredictor:
    from app_production.client import RemotePredictor

    def current_url() -> str | None:  # follows a service that `kit promote` replaced
        latest = read_state(settings)
        return latest.url if latest else None

    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return RemotePredictor(state.url, api_key=api_key, resolve_url=current_url)


def _remote_at(url: str, settings: KitSettings) -> RemotePredictor:
    """The service at KIT_SERVICE_URL, once it answers /readyz (the UI needs its schema)."""
    from app_production.client import RemotePredictor
    from app_production.state import is_ready

    if not is_ready(url):
        raise ServiceUnavailable(
            f"the model service at {url} (KIT_SERVICE_URL) is not answering /readyz: start it, "
            "or set KIT_SERVICE_URL to its address"
        )
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return RemotePredictor(url, api_key=api_key)


def service_report(settings: KitSettings) -> dict[str, object] | None:
    """For `kit status`: where the promoted service is, whether it is ready, what it serves."""
    from app_production.state import is_our_service, is_ready, service_processes

    state = read_state(settings)
    if state is None:
        return None
    ready = is_ready(state.url)
    served: str | None = None
    problem = ""
    supervised = is_our_service(state.pid)
    orphans = [] if supervised else [p.pid for p in service_processes(state)]
    if ready:
        remote = _remote(state, settings)
        try:
            manifest = remote.metadata()  # a dict: `kit status` needs no pandas
            served = f"{manifest['name']}:{manifest['version']}"
        except Exception as exc:  # shown, not fatal: status must report even a sick service
            problem = str(exc)
        finally:
            remote.close()
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
        # The supervisor restarts a crashed worker; without it a worker may still answer (an
        # orphan holding the port) but nothing would bring it back: not healthy.
        "supervisor_alive": supervised,
        "orphans": orphans,
    }
