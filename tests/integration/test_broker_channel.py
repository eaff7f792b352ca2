"""The broker channel against a real NATS JetStream server (Debian's nats-server), started as a
child process on a free loopback port and stopped by its pid: publish and follow, history and
rollback, artifacts stored once and verified, replica reports that expire, a broker restart."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import joblib
import pytest

from app_production.broker_channel import ARTIFACTS, BrokerUnavailable, NatsChannel
from app_production.channel import Channel
from app_production.channel_protocol import PublishConflict
from model.artifact import MANIFEST_FILE, MODEL_FILE, ModelStore, sha256_of, verify
from model.errors import ArtifactError
from tests.broker import TTL, Broker
from tests.helpers import ServerProcess, evil_model


@pytest.fixture
def open_channel(broker: Broker) -> Iterator[Callable[..., NatsChannel]]:
    """Opens channels of the penguins model on the broker; closes them all at the end."""
    opened: list[NatsChannel] = []

    def open_(**options: float) -> NatsChannel:
        channel = NatsChannel(broker.url, "penguins", replica_ttl=TTL, **options)
        opened.append(channel)
        return channel

    yield open_
    for channel in opened:
        channel.close()


def version(trained: Path, tmp_path: Path, name: str, *, redump: bool = False) -> Path:
    """A copy of the trained example as version `name` (re-dumped: other bytes, other sha256)."""
    folder = tmp_path / "models" / "penguins" / name
    if redump:
        folder = tmp_path / "other" / "penguins" / name
    shutil.copytree(trained, folder)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["version"] = name
    if redump:
        joblib.dump(joblib.load(folder / MODEL_FILE), folder / MODEL_FILE, compress=3)
        manifest["sha256"] = sha256_of(folder / MODEL_FILE)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    verify(folder)
    return folder


@pytest.fixture
def versions(trained_home: Path, tmp_path: Path) -> dict[str, Path]:
    trained = ModelStore(trained_home).current()
    return {
        tag: version(trained, tmp_path, tag.split(":")[1]) for tag in ("penguins:v1", "penguins:v2")
    }


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until `check()` holds; fails after `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.monotonic() - began
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout} s")


def serves(channel: NatsChannel, record: Channel) -> Callable[[], bool]:
    return lambda: (latest := channel.latest()) is not None and latest.id == record.id


def object_info(url: str, name: str) -> tuple[str, int | None]:
    """(nuid, size) of an object: a new upload gets a new nuid."""

    async def read() -> tuple[str, int | None]:
        import nats

        nc = await nats.connect(url)
        try:
            info = await (await nc.jetstream().object_store(ARTIFACTS)).get_info(name)
            return info.nuid, info.size
        finally:
            await nc.close()

    return asyncio.run(read())


def put_object(url: str, name: str, data: bytes) -> None:
    async def put() -> None:
        import nats

        nc = await nats.connect(url)
        try:
            await (await nc.jetstream().object_store(ARTIFACTS)).put(name, data)
        finally:
            await nc.close()

    asyncio.run(put())


def test_two_replicas_follow_one_publish(
    open_channel: Callable[..., NatsChannel], versions: dict[str, Path]
) -> None:
    first, second, cli = open_channel(), open_channel(), open_channel()
    assert first.latest() is None  # nothing published yet
    published = cli.publish(Channel(model="penguins:v1"), versions["penguins:v1"])
    assert published.id and published.published_at
    seconds = max(eventually(serves(first, published)), eventually(serves(second, published)))
    print(f"both replicas saw the publish within {seconds * 1000:.0f} ms")
    assert first.latest() == second.latest() == published


def test_a_replica_opened_after_the_publish_sees_it_at_once(
    open_channel: Callable[..., NatsChannel], versions: dict[str, Path]
) -> None:
    published = open_channel().publish(Channel(model="penguins:v1"), versions["penguins:v1"])
    assert open_channel().latest() == published  # no wait: the constructor read it


def test_history_and_rollback(
    open_channel: Callable[..., NatsChannel], versions: dict[str, Path]
) -> None:
    replica, cli = open_channel(), open_channel()
    v1 = cli.publish(Channel(model="penguins:v1"), versions["penguins:v1"])
    eventually(serves(replica, v1))
    v2 = cli.publish(Channel(model="penguins:v2", history=[v1.model]), versions["penguins:v2"])
    eventually(serves(replica, v2))
    current = replica.latest()
    assert current is not None and current.history == ["penguins:v1"]
    back = cli.publish(Channel(model=current.history[-1], history=current.history[:-1]))  # rollback
    eventually(serves(replica, back))
    assert back.model == "penguins:v1" and back.history == [] and back.id != v1.id
    assert [r.model for r in cli.revisions()] == ["penguins:v1", "penguins:v2", "penguins:v1"]
    with pytest.raises(ArtifactError, match="not on the broker"):
        cli.publish(Channel(model="penguins:v9"))  # a rollback to what was never uploaded


def test_artifact_is_uploaded_once_and_downloaded_verified(
    broker: Broker,
    open_channel: Callable[..., NatsChannel],
    versions: dict[str, Path],
    tmp_path: Path,
    trained_home: Path,
) -> None:
    cli, folder = open_channel(), versions["penguins:v1"]
    cli.publish(Channel(model="penguins:v1"), folder)
    uploaded = {f: object_info(broker.url, f"penguins/v1/{f}") for f in (MODEL_FILE, MANIFEST_FILE)}
    assert uploaded[MODEL_FILE][1] == (folder / MODEL_FILE).stat().st_size
    cli.publish(Channel(model="penguins:v1"), folder)  # again: nothing uploaded
    again = {f: object_info(broker.url, f"penguins/v1/{f}") for f in (MODEL_FILE, MANIFEST_FILE)}
    assert again == uploaded, "the second publish uploaded the artifact again"

    fetched = open_channel().fetch("penguins:v1", tmp_path / "cache")
    assert fetched == tmp_path / "cache" / "penguins" / "v1"
    assert verify(fetched).sha256 == verify(folder).sha256
    assert (fetched / MODEL_FILE).read_bytes() == (folder / MODEL_FILE).read_bytes()
    assert sorted(p.name for p in fetched.parent.iterdir()) == ["v1"]  # no partial download left

    other = version(ModelStore(trained_home).current(), tmp_path, "v1", redump=True)
    with pytest.raises(ArtifactError, match="already holds another penguins:v1"):
        cli.publish(Channel(model="penguins:v1"), other)


def test_a_tampered_object_is_refused_before_unpickling(
    broker: Broker,
    open_channel: Callable[..., NatsChannel],
    versions: dict[str, Path],
    tmp_path: Path,
) -> None:
    cli, replica = open_channel(), open_channel()
    published = cli.publish(Channel(model="penguins:v1"), versions["penguins:v1"])
    marker = tmp_path / "unpickled"
    evil = evil_model(marker)
    put_object(broker.url, f"penguins/v1/{MODEL_FILE}", evil)  # the manifest is left as it was
    eventually(serves(replica, published))
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError, match="sha256") as refused:
        replica.fetch("penguins:v1", cache)
    print(refused.value)
    assert "broker's copy of penguins:v1 was refused" in str(refused.value)
    assert not marker.exists(), "the tampered pickle was unpickled"
    assert list((cache / "penguins").iterdir()) == []  # nothing left to load by mistake


REPLICA = """
import sys, time
from app_production.broker_channel import NatsChannel
channel = NatsChannel(sys.argv[1], "penguins", replica_ttl=float(sys.argv[2]))
channel.report("second", "penguins:v1")
print("reported", flush=True)
time.sleep(600)
"""


def test_replicas_report_and_a_dead_one_drops_out(
    broker: Broker, open_channel: Callable[..., NatsChannel], tmp_path: Path
) -> None:
    first, cli = open_channel(), open_channel()
    first.report("first", "penguins:v1")
    other = ServerProcess(
        [sys.executable, "-c", REPLICA, broker.url, str(TTL)],
        tmp_path / "replica.log",
        dict(os.environ),
    )
    try:
        other.wait_for("reported", timeout=60)
        assert [r.replica for r in cli.replicas()] == ["first", "second"]
        os.killpg(other.proc.pid, signal.SIGKILL)  # no goodbye: only its heartbeat stops
        other.proc.wait(timeout=10)
        gone = eventually(lambda: [r.replica for r in cli.replicas()] == ["first"], TTL * 4)
        print(f"the dead replica dropped out {gone:.1f} s after it was killed (TTL {TTL} s)")
    finally:
        other.stop()
    time.sleep(TTL * 1.5)  # the live one outlives its TTL: its heartbeat refreshes it
    states = cli.replicas()
    assert [(s.replica, s.serving, s.refused) for s in states] == [("first", "penguins:v1", None)]
    first.report("first", "penguins:v1", {"model": "penguins:v2", "id": "x", "reason": "no"})
    assert cli.replicas()[0].refused == {"model": "penguins:v2", "id": "x", "reason": "no"}
    first.close()  # a clean stop withdraws its report at once
    assert cli.replicas() == []


def test_broker_down_then_back(
    broker: Broker, open_channel: Callable[..., NatsChannel], versions: dict[str, Path]
) -> None:
    replica = open_channel(reconnect_wait=0.2)
    cli = open_channel(reconnect_wait=0.2)
    v1 = cli.publish(Channel(model="penguins:v1"), versions["penguins:v1"])
    eventually(serves(replica, v1))
    replica.report("first", "penguins:v1")
    leaving = open_channel(reconnect_wait=0.2)
    broker.kill()
    eventually(lambda: not cli.connected and not replica.connected)
    assert replica.latest() == v1  # the replica keeps serving what it had
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=f"broker at {broker.url}"):
        cli.publish(Channel(model="penguins:v2", history=[v1.model]), versions["penguins:v2"])
    with pytest.raises(BrokerUnavailable):
        replica.report("first", "penguins:v1")
    leaving.close()  # a clean stop does not wait for the broker
    assert time.monotonic() - began < 2, "calls must fail fast while the broker is down"
    time.sleep(TTL)  # down for a while: the replica keeps its record and keeps trying
    assert replica.latest() == v1 and not replica.connected

    broker.start()  # same port, same store
    back = eventually(lambda: cli.connected and replica.connected, 15)
    print(f"both reconnected {back:.1f} s after the restart")
    deadline = time.monotonic() + 15
    while True:  # JetStream may still be recovering its streams for a moment
        try:
            v2 = cli.publish(
                Channel(model="penguins:v2", history=[v1.model]), versions["penguins:v2"]
            )
            break
        except BrokerUnavailable:
            assert time.monotonic() < deadline, "no publish within 15 s of the restart"
            time.sleep(0.2)
    eventually(serves(replica, v2), 10)
    eventually(lambda: [r.replica for r in cli.replicas()] == ["first"], TTL * 2)  # heartbeat
    assert open_channel().latest() == v2  # kept in the broker's store across the restart


def test_publish_is_compare_and_set_and_names_the_sha256(
    open_channel: Callable[..., NatsChannel], versions: dict[str, Path]
) -> None:
    """Two publishers read the same record; the second to write is refused, not lost over."""
    first, second = open_channel(), open_channel()
    v1 = first.publish(Channel(model="penguins:v1"), versions["penguins:v1"], after="")
    assert v1.sha256 == verify(versions["penguins:v1"]).sha256
    seen = first.revisions()[-1]
    assert seen.id == v1.id
    v2 = first.publish(Channel(model="penguins:v2", history=[v1.model]), versions["penguins:v2"])
    with pytest.raises(PublishConflict, match="someone else published"):
        second.publish(Channel(model="penguins:v2", history=[v1.model]), after=seen.id)
    with pytest.raises(PublishConflict):
        second.publish(Channel(model="penguins:v1"), after="")  # "nothing yet" is stale too
    assert [r.id for r in second.revisions()] == [v1.id, v2.id]  # nothing overwritten
    back = second.publish(Channel(model="penguins:v1"), after=v2.id)
    assert back.sha256 == v1.sha256  # a republish carries the stored version's sha256
