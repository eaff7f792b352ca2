"""`kit publish` and `kit rollback`: choose the version every replica of the service answers with.

Through the service's channel (app_production/channel_protocol.py): the file of the service
`kit promote` started on this machine, or a broker that every replica follows
(KIT_CHANNEL_URL, or `--channel`). publish: verify the version in the kit's store → publish it
(its artifact into the channel's store, then the record naming it, compare-and-set) → wait until
every live replica reports it serves it, or refused it (then the record before is published
again, the replicas that switched go back, and the exit code is 7) → make it the current model
(and, on one machine, the state file's), so that `kit predict`, `kit demo` and the service agree
on the model that answers. Replicas swap models themselves, without a restart; a UI keeps
running and its next prediction names the new version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app_production.channel import Channel
from app_production.channel_protocol import ReplicaState, open_channel, split_tag
from app_production.state import ServiceState, is_ready, read_state
from model import artifact
from model.errors import KitError, ServiceUnavailable, UsageError

if TYPE_CHECKING:
    from app_production.channel_protocol import ChannelBackend
    from model.settings import KitSettings

CONFIRM_TIMEOUT_S = 60.0


class PublishRefused(KitError):
    """A replica refused the published version (tampered, broken, other inputs), or did not
    switch in time: every replica is back on the version before."""

    exit_code = 7

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines  # one per replica


@dataclass
class Published:
    model: str
    previous: str
    seconds: float
    where: str  # "the service", or "the broker at nats://..."
    lines: list[str] = field(default_factory=list)  # one per replica

    @property
    def replicas(self) -> int:
        return len(self.lines)


def running_service(settings: KitSettings) -> ServiceState:
    state = read_state(settings)
    if state is None or not state.channel:
        raise UsageError(
            "no promoted service to publish to: run `kit promote` first (or name the broker "
            "its replicas follow: KIT_CHANNEL_URL or --channel)"
        )
    if not is_ready(state.url):
        raise ServiceUnavailable(
            f"the service at {state.url} is not ready: `kit status` tells more"
        )
    return state


def service_channel(
    settings: KitSettings, model: str, channel_url: str | None = None
) -> tuple[ChannelBackend, str, ServiceState | None]:
    """The channel to publish `model`'s versions on, a few words naming it, and the promoted
    service on this machine when it is that service's file."""
    if url := channel_url or settings.channel_url:
        return open_channel(url, model), f"the broker at {url}", None
    state = running_service(settings)
    return open_channel(state.channel, model), "the service", state


def live_replicas(
    settings: KitSettings, model: str, channel_url: str | None = None
) -> tuple[str, list[ReplicaState]] | None:
    """For `kit status`: the channel's name and its live replicas (None: no channel here)."""
    if not (channel_url or settings.channel_url):
        state = read_state(settings)
        if state is None or not state.channel:
            return None
    try:
        channel, where, _ = service_channel(settings, model, channel_url)
    except ServiceUnavailable:
        if channel_url or settings.channel_url:
            raise
        return None  # the promoted service is not ready: its own row says so
    try:
        return where, channel.replicas()
    finally:
        channel.close()


def publish(
    settings: KitSettings,
    version: str | None,
    *,
    rollback: bool = False,
    channel_url: str | None = None,
) -> Published:
    """Make every replica answer with `version` (default: the current one), or roll back."""
    from app_production.promote import version_folder

    store = artifact.ModelStore(settings.home)
    folder: Path | None = None if rollback else version_folder(settings, version)
    name = (folder or store.current()).parent.name
    channel, where, state = service_channel(settings, name, channel_url)
    try:
        current = channel.latest() or (Channel(model=state.model) if state else None)
        if rollback:
            if current is None or not current.history:
                served = current.model if current else "nothing"
                raise UsageError(
                    f"nothing to roll back to: {served} is the first version published"
                )
            tag, history = current.history[-1], current.history[:-1]
            local = store.path(*split_tag(tag))
            folder = local if (local / artifact.MANIFEST_FILE).exists() else None
        else:
            history = [*current.history, current.model] if current else []
        if folder is not None:
            manifest = artifact.verify(folder)  # refuses a tampered artifact before it goes out
            tag = f"{manifest.name}:{manifest.version}"
        if current is not None and tag == current.model:
            return Published(tag, tag, 0.0, where)
        began = time.perf_counter()
        record = Channel(model=tag, history=history)
        published = channel.publish(record, folder, after=current.id if current else "")
        replicas = _wait(channel, published, expect_one=state is not None)
        lines = [_line(replica, published) for replica in replicas]
        switched = [r for r in replicas if r.serving == tag]
        if len(switched) < len(replicas) or (state is not None and not replicas):
            raise _refused(channel, published, current, replicas, lines, where)
        _make_current(settings, store, state, tag)
        previous = current.model if current else "nothing published"
        return Published(tag, previous, time.perf_counter() - began, where, lines)
    finally:
        channel.close()


def _wait(channel: ChannelBackend, published: Channel, *, expect_one: bool) -> list[ReplicaState]:
    """The live replicas once each serves `published` or refused it (or the time is up)."""
    deadline = time.monotonic() + CONFIRM_TIMEOUT_S
    while True:
        replicas = channel.replicas()
        pending = [
            r for r in replicas if r.serving != published.model and not _refuses(r, published)
        ]
        if (not pending and (replicas or not expect_one)) or time.monotonic() > deadline:
            return replicas
        time.sleep(0.1)


def _refuses(replica: ReplicaState, published: Channel) -> bool:
    return replica.refused is not None and replica.refused.get("id") == published.id


def _line(replica: ReplicaState, published: Channel) -> str:
    if replica.serving == published.model:
        return f"replica {replica.replica}: serves {published.model}"
    if replica.refused is not None and _refuses(replica, published):
        return (
            f"replica {replica.replica}: refused {published.model} and keeps serving "
            f"{replica.serving}: {replica.refused['reason']}"
        )
    return (
        f"replica {replica.replica}: still serves {replica.serving}, not {published.model}, "
        f"after {CONFIRM_TIMEOUT_S:.0f} s"
    )


def _refused(
    channel: ChannelBackend,
    published: Channel,
    before: Channel | None,
    replicas: list[ReplicaState],
    lines: list[str],
    where: str,
) -> PublishRefused:
    """Publish the record before again (replicas that switched go back), and say why."""
    back = "no version was published before: each replica keeps what it serves"
    if before is not None:
        channel.publish(Channel(model=before.model, history=before.history), after=published.id)
        _wait(channel, Channel(model=before.model, id=""), expect_one=False)
        back = f"{where} is back on {before.model}"
    refusals = [r for r in replicas if _refuses(r, published)]
    if not replicas:
        why = f"no replica of {where} reported within {CONFIRM_TIMEOUT_S:.0f} s"
    elif len(replicas) == 1 and refusals and where == "the service":
        why = f"the service refused {published.model} and keeps serving {replicas[0].serving}: "
        why += refusals[0].refused["reason"] if refusals[0].refused else ""
    else:
        why = f"{len(replicas) - sum(r.serving == published.model for r in replicas)} of "
        why += f"{len(replicas)} replicas did not take {published.model} (see above)"
    return PublishRefused(f"{why}; {back}", lines)


def _make_current(
    settings: KitSettings, store: artifact.ModelStore, state: ServiceState | None, tag: str
) -> None:
    """What answers is what you chose: the kit's current model (and the state file's)."""
    name, version = split_tag(tag)
    if (store.path(name, version) / artifact.MANIFEST_FILE).exists():
        store.set_current(name, version)
    if state is not None:
        state.model = tag
        state.save(settings.state_file)
