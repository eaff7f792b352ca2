"""The channel seam: what `kit publish` and a service replica need from any channel.

Two implementations: the file channel of one machine (app_production/file_channel.py) and a
broker (app_production/broker_channel.py: NATS JetStream). The service knows this interface and
`open_channel` only: another broker (Kafka, Redis) is one more class and one more scheme there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from app_production.channel import Channel
from model.errors import UsageError


@dataclass
class ReplicaState:
    """What one replica of the service reports: the version it serves, or why it refused one."""

    replica: str  # e.g. the pod's name; unique among the replicas of one model
    serving: str  # model tag, e.g. "penguins:v2"
    refused: dict[str, str] | None = None  # {"model": tag, "id": publish id, "reason": ...}
    heartbeat: str = ""  # ISO time of the report, refreshed while the replica lives


class ChannelBackend(Protocol):
    """Model versions published as data, followed by every replica of one model's service.

    A channel is bound to one model name (e.g. "penguins") and holds one published record, a
    `Channel`: the model tag to serve, the tags served before it (oldest first, what `kit
    rollback` goes back to), and an id and a time that are new at each publish, so that a
    refusal is about one publish and not about a tag forever. The lifecycle::

        # kit publish penguins:v2 (kit rollback: the same, with the last tag of `history`)
        current = channel.latest()
        history = [*current.history, current.model] if current else []
        after = current.id if current else ""  # compare-and-set: no publish lost in a race
        published = channel.publish(Channel(model="penguins:v2", history=history), folder, after)
        # ... wait until every replica of channel.replicas() serves published.model, or
        # refused it (state.refused["id"] == published.id): one line per replica

        # each replica, in its follower thread
        record = channel.latest()                     # cheap: no network call on the broker
        if record and record.model != serving:
            folder = channel.fetch(record.model, cache)   # sha256 verified, nothing unpickled
            ...load, warm up, swap between batches; or refuse, and keep serving...
            channel.report(replica_id, serving, refused)  # kept alive by a heartbeat

    Rules every implementation keeps:

    - `publish` verifies nothing is half-written: the artifact (model.joblib + manifest.json
      of `folder`, verified before it goes anywhere) is stored before the record names it;
      `folder=None` republishes a version the channel already holds (a rollback). The record
      published carries the model file's sha256. With `after` (the id of the record the new
      one was built from, "" for none), a record published meanwhile by someone else makes it
      raise `PublishConflict` instead of overwriting that publish.
    - `latest` answers from what was last seen: a channel whose store is down keeps answering
      its last record (the replica keeps serving), and catches up when the store returns.
    - `fetch` returns a local folder whose model file matched its manifest's sha256; a
      tampered or damaged copy raises `ArtifactError` and leaves nothing behind.
    - `replicas` lists the live replicas only: one that stops reporting drops out.
    - Store unreachable: `publish`, `fetch`, `report` and `replicas` raise `ServiceUnavailable`
      (a subclass) at once or within a bounded time, never hang.
    """

    def latest(self) -> Channel | None: ...

    def publish(
        self, record: Channel, folder: Path | None = None, after: str | None = None
    ) -> Channel: ...

    def fetch(self, tag: str, into: Path) -> Path: ...

    def report(self, replica: str, serving: str, refused: dict[str, str] | None = None) -> None: ...

    def replicas(self) -> list[ReplicaState]: ...

    def close(self) -> None: ...


class PublishConflict(UsageError):
    """Another publish changed the channel between reading it and writing to it."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"{where} changed while publishing: someone else published meanwhile; look with "
            "`kit status`, then run the command again"
        )


def check_after(current: Channel | None, after: str | None, where: str) -> None:
    """The compare of compare-and-set: `current` is still the record the publish read."""
    if after is not None and (current.id if current else "") != after:
        raise PublishConflict(where)


def stamped(record: Channel, sha256: str) -> Channel:
    """A copy of `record` with a new publish id and time (as Channel.save does for the file)
    and the sha256 of the model file it names."""
    return replace(
        record,
        history=list(record.history),
        published_at=datetime.now(UTC).isoformat(timespec="seconds"),
        id=uuid.uuid4().hex,
        sha256=sha256,
    )


def check_address(address: str) -> str:
    """`address` if it names a channel this kit knows: nats://HOST:PORT or a file's path."""
    if "://" not in address:
        return address
    scheme = address.split("://", 1)[0]
    if scheme != "nats":
        raise UsageError(
            f"channel {address!r}: the scheme {scheme!r} is not known: use nats://HOST:PORT "
            "(a NATS JetStream broker), or leave KIT_CHANNEL_URL unset for the service's own "
            "file on one machine"
        )
    from app_production.broker_channel import broker_address

    return broker_address(address)


def open_channel(address: str, model: str) -> ChannelBackend:
    """The channel of `model` at `address`: nats://HOST:PORT (a broker) or a file's path.

    The broker's client is imported only when a broker is named (a service on one machine
    does not need it)."""
    if "://" in check_address(address):
        from app_production.broker_channel import NatsChannel

        return NatsChannel(address, model)
    from app_production.file_channel import FileChannel

    return FileChannel(Path(address))


def split_tag(tag: str) -> tuple[str, str]:
    """("penguins", "v2") from "penguins:v2"; a clear error for anything else."""
    from model.artifact import check_name

    name, _, version = tag.partition(":")
    if not version or "/" in version or version.startswith("."):
        raise UsageError(f"model tag {tag!r} is not valid: use NAME:VERSION, e.g. penguins:v2")
    return check_name(name), version
