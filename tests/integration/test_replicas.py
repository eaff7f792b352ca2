"""Model versions across replicas: three real services follow one real broker.

Each replica is `bentoml serve` of the service as a container runs it (its own BentoML home,
v1 only: no shared disk), with KIT_CHANNEL_URL naming a NATS JetStream server started as a
child on a free loopback port, and a replica id. A steady stream of requests goes to each
(one RemotePredictor per replica, no retries: a failure must show). `kit publish` and
`kit rollback` are the real CLI with --channel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from app_production.broker_channel import NatsChannel, object_name
from app_production.client import RemotePredictor
from model.artifact import MANIFEST_FILE, MODEL_FILE
from model.sampling import parity_records
from model.schema import ModelSchema
from tests.broker import Broker
from tests.helpers import (
    ServerProcess,
    evil_model,
    free_port,
    kit_env,
    run_kit,
    service_leftovers,
    wait_http,
    write_figures,
)

pytestmark = pytest.mark.reliability  # `make reliability` reports these figures too
REFUSED = 7  # `kit --help`: the service refused a published model version


class Replica:
    """One replica: `bentoml serve` on a free loopback port, following the broker."""

    def __init__(self, home: Path, name: str, broker: Broker, folder: Path) -> None:
        self.name, self.service_id = name, f"replicas-{name}-{os.getpid()}"
        bentoml_home = folder / name / "bentoml"
        shutil.copytree(home / "bentoml", bentoml_home)  # its own disk: v1 only
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = kit_env(
            home,
            BENTOML_HOME=str(bentoml_home),
            KIT_MODEL_TAG="penguins:v1",
            KIT_SERVICE_ID=self.service_id,
            KIT_CHANNEL_URL=broker.url,
            KIT_REPLICA_ID=name,
        )
        command = [sys.executable, "-m", "bentoml", "serve", "app_production.service:ModelService"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        self.server = ServerProcess(command, folder / f"{name}.log", env)

    def ready(self) -> Replica:
        wait_http(f"{self.url}/readyz", timeout=120)
        return self

    def version(self) -> str:
        client = RemotePredictor(self.url, retries=0)
        try:
            return str(client.metadata()["version"])
        finally:
            client.close()

    def switches(self) -> list[str]:
        return re.findall(r"now serving (\S+)", self.server.output())

    def stop(self) -> None:
        """SIGTERM the group we started, then any worker carrying our KIT_SERVICE_ID."""
        self.server.stop()
        pids = service_leftovers(self.server.proc.pid, self.service_id)
        left = [psutil.Process(pid) for pid in pids]
        for process in left:
            process.terminate()
        psutil.wait_procs(left, timeout=15)


@dataclass
class Stream:
    """A steady stream of predictions to one replica: the versions answered, the failures."""

    replica: Replica
    record: dict[str, object]
    answered: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        client = RemotePredictor(self.replica.url, retries=0)
        try:
            while not self.stop.is_set():
                try:
                    self.answered.append(client.predict([self.record])[0].model_version)
                except Exception as exc:  # counted: the tests want none
                    self.failures.append(repr(exc))
        finally:
            client.close()

    def more(self, count: int = 20, timeout: float = 30) -> None:
        """Wait until `count` more answers arrived (the stream really runs on)."""
        target, deadline = len(self.answered) + count, time.monotonic() + timeout
        while len(self.answered) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.answered) >= target, f"{self.replica.name}: the stream stalled"

    def end(self) -> list[str]:
        self.stop.set()
        self.thread.join(30)
        return transitions(self.answered)


def transitions(versions: list[str]) -> list[str]:
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


@pytest.fixture
def home(kit_home: Path) -> Path:
    """v1, v2 and v3 in the kit's store; v1 in its BentoML store (what each replica's image
    would hold)."""
    run_kit("train", home=kit_home, check=True)
    run_kit("train", home=kit_home, check=True)
    script = (
        "import sys; from pathlib import Path; from model import artifact; "
        "from app_production.promote import save_to_store; "
        "folder = Path(sys.argv[1]); save_to_store(folder, artifact.verify(folder))"
    )
    env = kit_env(kit_home, BENTOML_HOME=str(kit_home / "bentoml"))
    folder = kit_home / "models/penguins/v1"
    subprocess.run([sys.executable, "-c", script, str(folder)], env=env, check=True)
    return kit_home


@pytest.fixture
def start(home: Path, broker: Broker, tmp_path: Path) -> Iterator[object]:
    """start("r1", "r2", ...) -> ready replicas (started together); all stopped at the end."""
    started: list[Replica] = []

    def start_(*names: str) -> list[Replica]:
        replicas = [Replica(home, name, broker, tmp_path / "replicas") for name in names]
        started.extend(replicas)
        return [replica.ready() for replica in replicas]

    yield start_
    for replica in started:
        replica.stop()


def record_of(home: Path) -> dict[str, object]:
    manifest = json.loads((home / "models/penguins/v1" / MANIFEST_FILE).read_text())
    return parity_records(ModelSchema.model_validate(manifest["schema"]))[0]


def kit(home: Path, broker: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kit(*args, "--channel", broker.url, home=home, timeout=180)


LINE = re.compile(r"replica (r\d): (serves \S+|refused \S+ and keeps serving \S+?):?\s")


def replica_lines(output: str) -> list[tuple[str, str]]:
    """(replica, what it does) from `kit publish`'s one line per replica."""
    return sorted(LINE.findall(output))


def test_publish_and_rollback_reach_every_replica_under_load_with_no_failure(
    home: Path, broker: Broker, start: object
) -> None:
    replicas = start("r1", "r2", "r3")  # type: ignore[operator]
    first = kit(home, broker, "publish", "--version", "v1")  # the version they serve already
    assert first.returncode == 0, first.stderr
    streams = [Stream(replica, record_of(home)) for replica in replicas]
    try:
        for stream in streams:
            stream.more()
        published = kit(home, broker, "publish", "--version", "v2")
        served_after_publish = [replica.version() for replica in replicas]  # at once
        for stream in streams:
            stream.more()
        back = kit(home, broker, "rollback")
        served_after_rollback = [replica.version() for replica in replicas]
        for stream in streams:
            stream.more()
    finally:
        answered = [stream.end() for stream in streams]
    assert published.returncode == 0, published.stderr
    assert served_after_publish == ["v2", "v2", "v2"], "kit publish returned before all served"
    assert replica_lines(published.stderr) == [(f"r{i}", "serves penguins:v2") for i in (1, 2, 3)]
    assert "every replica (3) now answers with penguins:v2 (was penguins:v1" in published.stderr
    assert back.returncode == 0, back.stderr
    assert served_after_rollback == ["v1", "v1", "v1"]
    assert "every replica (3) now answers with penguins:v1 (was penguins:v2" in back.stderr
    failures = [f for stream in streams for f in stream.failures]
    requests = sum(len(stream.answered) for stream in streams)
    write_figures(
        "replicas_publish_under_load",
        {
            "replicas": len(replicas),
            "requests": requests + len(failures),
            "failed": len(failures),
            "answering_versions": " | ".join(" → ".join(a) for a in answered),
        },
    )
    assert failures == []
    assert answered == [["v1", "v2", "v1"]] * 3, "each replica switches exactly once each time"
    assert [replica.switches() for replica in replicas] == [["penguins:v2", "penguins:v1"]] * 3
    status = run_kit("status", "--json", "--channel", broker.url, home=home, check=True)
    report = json.loads(status.stdout)
    assert [(r["replica"], r["serving"]) for r in report["replicas"]] == [
        ("r1", "penguins:v1"),
        ("r2", "penguins:v1"),
        ("r3", "penguins:v1"),
    ]
    assert report["channel"] == f"the broker at {broker.url}"


def test_a_tampered_artifact_on_the_broker_is_refused_by_every_replica(
    home: Path, broker: Broker, start: object, tmp_path: Path
) -> None:
    """v3's model file on the broker replaced by a pickle that runs code; its manifest kept:
    `kit publish --version v3` finds v3 there (same manifest) and publishes the record."""
    replicas = start("r1", "r2", "r3")  # type: ignore[operator]
    assert kit(home, broker, "publish", "--version", "v1").returncode == 0
    marker = tmp_path / "unpickled"
    folder = home / "models/penguins/v3"
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / MODEL_FILE).write_bytes(evil_model(marker))
    shutil.copyfile(folder / MANIFEST_FILE, planted / MANIFEST_FILE)
    plant(broker.url, planted)
    streams = [Stream(replica, record_of(home)) for replica in replicas]
    try:
        for stream in streams:
            stream.more()
        refused = kit(home, broker, "publish", "--version", "v3")
        for stream in streams:
            stream.more()
    finally:
        answered = [stream.end() for stream in streams]
    assert refused.returncode == REFUSED, refused.stderr
    lines = replica_lines(refused.stderr)
    kept = "refused penguins:v3 and keeps serving penguins:v1"
    assert lines == [(f"r{i}", kept) for i in (1, 2, 3)]
    assert refused.stderr.count("sha256") >= 3, refused.stderr  # each says why
    assert "is back on penguins:v1" in refused.stderr
    assert not marker.exists(), "the tampered pickle was unpickled"
    assert [s.failures for s in streams] == [[], [], []]
    assert answered == [["v1"]] * 3
    assert [replica.version() for replica in replicas] == ["v1", "v1", "v1"]
    channel = NatsChannel(broker.url, "penguins")
    try:
        latest = channel.latest()
        assert latest is not None and latest.model == "penguins:v1"  # the record went back
    finally:
        channel.close()


def plant(url: str, folder: Path) -> None:
    """Put `folder`'s files on the broker as penguins:v3, past the kit (an attacker's write)."""
    import asyncio

    import nats

    async def put() -> None:
        client = await nats.connect(url)
        try:
            store = await client.jetstream().object_store("kit-artifacts")
            for file in (MODEL_FILE, MANIFEST_FILE):
                await store.put(object_name("penguins:v3", file), (folder / file).read_bytes())
        finally:
            await client.close()

    asyncio.run(put())


def test_a_late_replica_and_a_broker_restart_lose_no_request(
    home: Path, broker: Broker, start: object
) -> None:
    replicas = start("r1", "r2")  # type: ignore[operator]
    assert kit(home, broker, "publish", "--version", "v1").returncode == 0
    streams = [Stream(replica, record_of(home)) for replica in replicas]
    try:
        published = kit(home, broker, "publish", "--version", "v2")
        assert published.returncode == 0, published.stderr
        (late,) = start("r3")  # type: ignore[operator]
        client = RemotePredictor(late.url, retries=0)
        try:  # its very first answer is the published version (its image holds v1)
            assert client.predict([record_of(home)])[0].model_version == "v2"
        finally:
            client.close()
        streams.append(Stream(late, record_of(home)))

        broker.kill()  # SIGKILL mid-stream: every replica keeps serving v2
        for stream in streams:
            stream.more()
        down = run_kit("status", "--channel", broker.url, home=home)
        assert down.returncode == 4 and "broker" in down.stderr, down.stderr
        broker.start()
        wait_replicas(home, broker, {"r1", "r2", "r3"})
        after = kit(home, broker, "publish", "--version", "v3")
        assert after.returncode == 0, after.stderr
        assert replica_lines(after.stderr) == [(f"r{i}", "serves penguins:v3") for i in (1, 2, 3)]
        for stream in streams:
            stream.more()
    finally:
        answered = [stream.end() for stream in streams]
    failures = [f for stream in streams for f in stream.failures]
    write_figures(
        "replicas_broker_restart",
        {
            "requests": sum(len(s.answered) for s in streams) + len(failures),
            "failed": len(failures),
            "late_replica_first_version": "v2",
            "answering_versions": " | ".join(" → ".join(a) for a in answered),
        },
    )
    assert failures == []
    assert answered == [["v1", "v2", "v3"], ["v1", "v2", "v3"], ["v2", "v3"]]


def wait_replicas(home: Path, broker: Broker, names: set[str], timeout: float = 60) -> None:
    """Until `kit status` lists every replica again (they reconnect by themselves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run_kit("status", "--json", "--channel", broker.url, home=home)
        if status.returncode == 0:
            listed = {r["replica"] for r in json.loads(status.stdout)["replicas"]}
            if listed == names:
                return
        time.sleep(0.5)
    raise AssertionError(f"replicas {names} not all back after {timeout} s")


def test_a_replica_started_while_the_broker_is_down_serves_then_follows(
    home: Path, broker: Broker, start: object
) -> None:
    broker.kill()
    (replica,) = start("r1")  # type: ignore[operator]
    assert replica.version() == "v1"  # its image's version, at once
    assert "channel unavailable, still serving penguins:v1" in replica.server.output()
    broker.start()
    wait_replicas(home, broker, {"r1"})  # it opens the channel by itself
    published = kit(home, broker, "publish", "--version", "v2")
    assert published.returncode == 0, published.stderr
    assert replica_lines(published.stderr) == [("r1", "serves penguins:v2")]
    assert replica.version() == "v2"


def test_a_channel_url_the_kit_cannot_use_stops_the_service_with_the_reason(
    home: Path, tmp_path: Path
) -> None:
    env = kit_env(
        home,
        BENTOML_HOME=str(home / "bentoml"),
        KIT_MODEL_TAG="penguins:v1",
        KIT_CHANNEL_URL="kafka://broker:9092",
    )
    command = [sys.executable, "-m", "bentoml", "serve", "app_production.service:ModelService"]
    server = ServerProcess(
        [*command, "--host", "127.0.0.1", "--port", str(free_port())], tmp_path / "bad.log", env
    )
    try:
        code = server.wait_exit(timeout=120)
    finally:
        server.stop()
    assert code != 0
    assert "the scheme 'kafka' is not known: use nats://HOST:PORT" in server.output()
