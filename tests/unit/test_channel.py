"""The follower of a channel, and the file channel's parts that need no BentoML store.

The follower is driven through a channel held in memory (the seam's contract, with real
artifact folders); the real channels are tested against a real service (tests/integration/
test_versions.py: the file) and a real broker (tests/integration/test_broker_channel.py,
test_replicas.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from app_production.channel import Channel
from app_production.channel_protocol import (
    PublishConflict,
    ReplicaState,
    check_address,
    check_after,
    stamped,
)
from app_production.file_channel import FileChannel
from app_production.follower import Follower, replica_id
from model import artifact
from model.artifact import ModelStore
from model.errors import ServiceUnavailable, UsageError


class MemoryChannel:
    """A channel in memory: records as published, artifacts as folders, reports as kept."""

    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders, self.record, self.reports = folders, None, {}  # type: ignore[var-annotated]
        self.down = False
        self.fetched: list[str] = []

    def latest(self) -> Channel | None:
        return self.record

    def publish(self, record: Channel, folder: Path | None = None, after: str | None = None):  # type: ignore[no-untyped-def]
        check_after(self.record, after, "memory")
        self.record = stamped(record, artifact.verify(self.folders[record.model]).sha256)
        return self.record

    def fetch(self, tag: str, into: Path) -> Path:
        if self.down:
            raise ServiceUnavailable("the broker is down")
        self.fetched.append(tag)
        return self.folders[tag]

    def report(self, replica: str, serving: str, refused: dict[str, str] | None = None) -> None:
        if self.down:
            raise ServiceUnavailable("the broker is down")
        self.reports[replica] = ReplicaState(replica, serving, refused)

    def replicas(self) -> list[ReplicaState]:
        return list(self.reports.values())

    def close(self) -> None:
        self.reports.clear()


class Loader:
    def __init__(self, broken: set[str]) -> None:
        self.broken, self.loaded, self.swapped = broken, [], []  # type: ignore[var-annotated]

    def load(self, folder: Path) -> str:
        tag = f"{folder.parent.name}:{folder.name}"
        self.loaded.append(tag)
        if tag in self.broken:
            raise ValueError(f"{tag}: cannot warm up")
        return f"model {tag}"

    def swap(self, tag: str, model: str) -> None:
        self.swapped.append((tag, model))


@pytest.fixture
def versions(example_store_copy: ModelStore) -> dict[str, Path]:
    """m:v1, m:v2, m:v3: copies of the example artifact (their manifests say penguins:v1)."""
    source = example_store_copy.path("penguins", "v1")
    folders = {}
    for version in ("v1", "v2", "v3"):
        folder = example_store_copy.home / "m" / version
        shutil.copytree(source, folder)
        folders[f"m:{version}"] = folder
    return folders


def follower(channel: MemoryChannel, loader: Loader, **options: float) -> Follower[str]:
    return Follower(
        lambda: channel, "pod-a", "m:v1", loader.load, loader.swap, Path("unused"), **options
    )


def test_the_follower_swaps_refuses_and_retries_a_new_publish(versions: dict[str, Path]) -> None:
    channel, loader = MemoryChannel(versions), Loader(broken={"m:v3"})
    following = follower(channel, loader)
    following.check()  # nothing published yet: it reports what it serves
    assert channel.replicas() == [ReplicaState("pod-a", "m:v1", None)]
    channel.publish(Channel(model="m:v1"))
    following.check()
    assert loader.loaded == []  # already served

    channel.publish(Channel(model="m:v2", history=["m:v1"]))
    following.check()
    assert loader.swapped == [("m:v2", "model m:v2")] and following.serving == "m:v2"
    assert channel.reports["pod-a"].serving == "m:v2"

    broken = channel.publish(Channel(model="m:v3", history=["m:v1", "m:v2"]))
    following.check()
    following.check()  # the same publish is not tried twice
    assert following.serving == "m:v2" and loader.loaded.count("m:v3") == 1
    refused = {"model": "m:v3", "id": broken.id, "reason": "ValueError: m:v3: cannot warm up"}
    assert following.refused == refused
    assert channel.reports["pod-a"] == ReplicaState("pod-a", "m:v2", refused)

    loader.broken.clear()  # fixed, and published again: tried again
    channel.publish(Channel(model="m:v3", history=["m:v1", "m:v2"]))
    following.check()
    assert following.serving == "m:v3" and following.refused is None
    assert channel.reports["pod-a"] == ReplicaState("pod-a", "m:v3", None)


def test_a_file_other_than_the_one_the_publisher_verified_is_refused(
    versions: dict[str, Path],
) -> None:
    """The artifact and its manifest agree (a consistent swap in the store), but the record
    names another sha256: refused before anything is unpickled."""
    channel, loader = MemoryChannel(versions), Loader(broken=set())
    published = channel.publish(Channel(model="m:v2", history=["m:v1"]))
    channel.record = replace(published, sha256="0" * 64)
    following = follower(channel, loader)
    following.check()
    assert loader.loaded == [] and following.serving == "m:v1"
    assert following.refused is not None and "not the 000000000000…" in following.refused["reason"]


def test_a_channel_down_changes_nothing_and_is_caught_up_with(versions: dict[str, Path]) -> None:
    channel, loader = MemoryChannel(versions), Loader(broken=set())
    attempts: list[int] = []

    def open_channel() -> MemoryChannel:
        attempts.append(1)
        if len(attempts) < 3:
            raise ServiceUnavailable("no broker answers")
        return channel

    following = Follower(
        open_channel, "pod-a", "m:v1", loader.load, loader.swap, Path("unused"), retry=0.0
    )
    following.check()
    following.check()
    assert following.channel is None and following.serving == "m:v1"  # serving all along
    channel.publish(Channel(model="m:v2", history=["m:v1"]))
    following.check()  # the third attempt opens it
    assert following.serving == "m:v2" and len(attempts) == 3

    channel.down = True  # the broker goes away mid-stream: latest() keeps its last record
    channel.publish(Channel(model="m:v3", history=["m:v1", "m:v2"]))
    following.check()
    assert following.serving == "m:v2" and following.refused is None  # not a refusal
    channel.down = False
    following.check()
    assert following.serving == "m:v3" and channel.reports["pod-a"].serving == "m:v3"


def test_the_replica_id_is_the_pod_s_name_or_host_and_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIT_REPLICA_ID", "penguins-service-7d9f-x2k")
    assert replica_id() == "penguins-service-7d9f-x2k"
    monkeypatch.delenv("KIT_REPLICA_ID")
    monkeypatch.setattr("socket.gethostname", lambda: "build box.example")
    assert replica_id().startswith("build-box-example-")


def test_compare_and_set_refuses_a_publish_built_on_an_old_record() -> None:
    current = stamped(Channel(model="m:v2", history=["m:v1"]), "ab" * 32)
    check_after(current, current.id, "the channel")
    check_after(current, None, "the channel")  # no check asked
    check_after(None, "", "the channel")  # nothing published yet, as expected
    for stale in ("", "another-id"):
        with pytest.raises(PublishConflict, match="someone else published"):
            check_after(current, stale, "the channel")


def test_channel_addresses_are_checked_before_anything_connects() -> None:
    assert check_address("/home/me/.kit/channel-1.json") == "/home/me/.kit/channel-1.json"
    assert check_address("nats://127.0.0.1") == "nats://127.0.0.1:4222"
    for bad in ("kafka://broker:9092", "redis://x", "nats://", "nats://host:port"):
        with pytest.raises(UsageError, match="nats://HOST:PORT"):
            check_address(bad)


def test_a_damaged_channel_file_is_ignored_until_it_is_whole_again(tmp_path: Path) -> None:
    path = tmp_path / "channel.json"
    path.write_text('{"model": "m:v')
    assert FileChannel(path).latest() is None
    Channel(model="m:v1").save(path)
    assert FileChannel(path).latest() == Channel.load(path)


def test_file_reports_are_live_while_their_process_runs(tmp_path: Path) -> None:
    channel = FileChannel(tmp_path / "channel-1.json")
    channel.report("here-1", "m:v1")
    gone = subprocess.run(  # a replica whose process has ended since it reported
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from app_production.file_channel import "
            "FileChannel; FileChannel(Path(sys.argv[1])).report('gone-1', 'm:v1')",
            str(channel.path),
        ],
        check=True,
    )
    assert gone.returncode == 0 and (channel.reports / "gone-1.json").exists()
    (channel.reports / "junk.json").write_text("{")
    assert [r.replica for r in channel.replicas()] == ["here-1"]
    mine = json.loads((channel.reports / "here-1.json").read_text())
    assert mine["serving"] == "m:v1" and mine["heartbeat"]
    assert (channel.reports / "here-1.json").stat().st_mode & 0o077 == 0  # private
    channel.close()
    assert channel.replicas() == []
