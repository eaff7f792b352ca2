"""`kit publish` and `kit rollback`: choose the version the running service answers with.

publish: verify the version in the kit's store → copy it to the BentoML store → write the
service's channel → wait until the service answers with it (or says why it refused it) →
record it in the state file and make it the current model (so `kit predict`, `kit demo` and the
service agree on the model that answers). The service swaps models itself, without a
restart; the UI keeps running and its next prediction names the new version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from app_production.channel import Channel
from app_production.state import ServiceState, is_ready, read_state
from model import artifact
from model.errors import KitError, ServiceUnavailable, UsageError
from model.settings import KitSettings

CONFIRM_TIMEOUT_S = 60.0


class PublishRefused(KitError):
    """The service refused the published version (tampered, broken, other inputs)."""

    exit_code = 7


@dataclass
class Published:
    model: str
    previous: str
    seconds: float


def running_service(settings: KitSettings) -> ServiceState:
    state = read_state(settings)
    if state is None or not state.channel:
        raise UsageError("no promoted service to publish to: run `kit promote` first")
    if not is_ready(state.url):
        raise ServiceUnavailable(
            f"the service at {state.url} is not ready: `kit status` tells more"
        )
    return state


def _served(state: ServiceState, api_key: str | None) -> tuple[str, dict[str, str] | None]:
    from app_production.client import RemotePredictor

    client = RemotePredictor(state.url, api_key=api_key)
    try:
        manifest = client.metadata()
    finally:
        client.close()
    return f"{manifest['name']}:{manifest['version']}", manifest.get("refused")


def publish(settings: KitSettings, version: str | None, *, rollback: bool = False) -> Published:
    """Make the running service answer with `version` (default: the current one)."""
    from app_production.promote import save_to_store, version_folder

    state = running_service(settings)
    channel = Channel.load(Path(state.channel)) or Channel(model=state.model)
    store = artifact.ModelStore(settings.home)
    if rollback:
        if not channel.history:
            raise UsageError(
                f"nothing to roll back to: {channel.model} is the first version served"
            )
        tag, history = channel.history[-1], channel.history[:-1]
        folder = store.path(*tag.split(":", 1))
    else:
        folder = version_folder(settings, version)
        history = [*channel.history, channel.model]
    manifest = artifact.verify(folder)  # refuses a tampered artifact before it goes anywhere
    tag = save_to_store(folder, manifest)
    if tag == channel.model:
        return Published(tag, tag, 0.0)
    began = time.perf_counter()
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    published = Channel(model=tag, history=history)
    published.save(Path(state.channel))
    deadline = time.monotonic() + CONFIRM_TIMEOUT_S
    while time.monotonic() < deadline:
        served, refused = _served(state, api_key)
        if served == tag:
            previous, state.model = state.model, tag
            state.save(settings.state_file)
            store.set_current(manifest.name, manifest.version)  # what answers is what you chose
            return Published(tag, previous, time.perf_counter() - began)
        if refused and refused.get("id") == published.id:
            Channel(model=channel.model, history=channel.history).save(Path(state.channel))
            raise PublishRefused(
                f"the service refused {tag} and keeps serving {served}: {refused['reason']}"
            )
        time.sleep(0.1)
    raise PublishRefused(f"the service did not switch to {tag} within {CONFIRM_TIMEOUT_S:.0f} s")
