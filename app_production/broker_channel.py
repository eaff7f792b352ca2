"""The broker channel: model versions through NATS JetStream, to replicas on many machines.

Three buckets on one broker, made on first use (the same on every broker, one key per model):

    kit-models     KV, key <model>: the published record (a Channel, JSON), 16 revisions kept
    kit-artifacts  object store: <model>/<version>/model.joblib, then .../manifest.json
    kit-replicas   KV whose entries expire (TTL): key <model>.<replica>, a ReplicaState (JSON),
                   refreshed by a heartbeat, so a dead replica drops out

Two objects per version, not one tar: nothing to unpack (no archive paths to trust), the
small manifest is read alone to decide whether a version is already there, and the model file
is streamed to disk. The manifest goes last: its presence says the upload is complete.

`NatsChannel` is synchronous (the service's follower thread and the CLI call it): it runs the
async nats-py client in an event loop of its own thread. A KV watcher keeps the last record
seen, so `latest()` costs no network call and keeps answering while the broker is down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Coroutine
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.object_store import ObjectStore

from app_production.channel import Channel
from app_production.channel_protocol import (
    ChannelBackend,
    PublishConflict,
    ReplicaState,
    check_after,
    split_tag,
    stamped,
)
from model import artifact
from model.errors import ArtifactError, ServiceUnavailable, UsageError

MODELS, ARTIFACTS, REPLICAS = "kit-models", "kit-artifacts", "kit-replicas"
HISTORY = 16  # revisions of each model's record the broker keeps
REPLICA_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
TRANSFER_TIMEOUT_S = 300.0  # an upload or a download of one artifact
T = TypeVar("T")


class BrokerUnavailable(ServiceUnavailable):
    """The channel's broker cannot be reached, or did not answer in time."""


def broker_address(url: str) -> str:
    """nats://HOST:PORT from a channel URL (port 4222 if none); a clear error otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 4222
    except ValueError:
        parts, port = urllib.parse.urlsplit(""), 0
    if parts.scheme != "nats" or not parts.hostname or parts.path not in ("", "/") or not port:
        raise UsageError(
            f"channel URL {url!r} is not valid: use nats://HOST:PORT, e.g. nats://127.0.0.1:4222"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"nats://{host}:{port}"


def object_name(tag: str, file: str) -> str:
    name, version = split_tag(tag)
    return f"{name}/{version}/{file}"


def _record(data: bytes) -> Channel | None:
    try:
        return Channel(**json.loads(data))
    except (ValueError, TypeError):
        return None  # not a record of ours: ignored, as a damaged channel file is


class NatsChannel:
    """The channel of one model on a NATS JetStream broker (see ChannelBackend)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        replica_ttl: float = 10.0,
        timeout: float = 5.0,
        reconnect_wait: float = 1.0,
    ) -> None:
        self.url, self.model = broker_address(url), artifact.check_name(model)
        self.replica_ttl, self.timeout, self.reconnect_wait = replica_ttl, timeout, reconnect_wait
        self._latest: Channel | None = None
        self._state: ReplicaState | None = None  # what the heartbeat repeats
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker", daemon=True)
        self._thread.start()
        self._nc = Client()
        self._tasks: list[asyncio.Task[None]] = []
        try:
            self._run(self._open(), "connect", 2 * timeout + 1)  # the connect's own limit first
        except BaseException:
            self._stop_loop()
            raise

    # --- the ChannelBackend interface -------------------------------------------------------

    def latest(self) -> Channel | None:
        """The last record the watcher saw (the current one from the start, then each change)."""
        with self._lock:
            latest = self._latest
        return None if latest is None else replace(latest, history=list(latest.history))

    def publish(
        self, record: Channel, folder: Path | None = None, after: str | None = None
    ) -> Channel:
        """Store the artifact of `folder` if it is not there yet, then record the version
        (compare-and-set on the key's revision: a publish meanwhile raises PublishConflict)."""
        if split_tag(record.model)[0] != self.model:
            raise UsageError(f"{record.model} is not a version of {self.model}")
        manifest = artifact.verify(folder) if folder is not None else None
        if manifest is not None and f"{manifest.name}:{manifest.version}" != record.model:
            raise UsageError(
                f"{folder} holds {manifest.name}:{manifest.version}, not {record.model}"
            )
        return self._run(
            self._publish(record, folder, manifest, after), "publish", TRANSFER_TIMEOUT_S
        )

    def fetch(self, tag: str, into: Path) -> Path:
        """`into/<name>/<version>`, downloaded (once) and verified against its manifest's sha256."""
        name, version = split_tag(tag)
        target = into / name / version
        if target.exists():
            try:
                artifact.verify(target)
                return target
            except ArtifactError:
                shutil.rmtree(target)  # a damaged local copy: download it again
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            self._run(self._download(tag, partial), f"download {tag}", TRANSFER_TIMEOUT_S)
            try:
                manifest = artifact.verify(partial)  # sha256 before anything is unpickled
            except ArtifactError as exc:
                reason = str(exc).replace(f"{partial}{os.sep}", "")  # not a temporary path
                raise ArtifactError(
                    f"the broker's copy of {tag} was refused: {reason}; or publish the version "
                    "again from the store where it verifies"
                ) from exc
            if f"{manifest.name}:{manifest.version}" != tag:
                raise ArtifactError(
                    f"the broker's copy of {tag} holds {manifest.name}:{manifest.version}: "
                    "publish the version again from its folder"
                )
            try:
                partial.rename(target)
            except OSError:  # another process of this machine fetched it meanwhile
                artifact.verify(target)
                shutil.rmtree(partial)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return target

    def report(self, replica: str, serving: str, refused: dict[str, str] | None = None) -> None:
        """Say what this replica serves; the heartbeat repeats it until close()."""
        if not REPLICA_ID.fullmatch(replica):
            raise UsageError(
                f"replica id {replica!r} is not valid: use letters, digits, '-' or '_'"
            )
        state = ReplicaState(replica, serving, refused)
        with self._lock:
            self._state = state
        self._run(self._put_state(state), "report")

    def replicas(self) -> list[ReplicaState]:
        """The live replicas of this model (those whose report has not expired), by id."""
        return self._run(self._replicas(), "list replicas")

    def close(self) -> None:
        """Withdraw this replica's report, stop watching, disconnect, stop the loop thread."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._close(), "close")
        except ServiceUnavailable:
            pass  # the broker is down: the report expires by itself
        finally:
            self._stop_loop()

    # --- beyond the interface ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)

    def revisions(self) -> list[Channel]:
        """Every record the broker still keeps for this model, oldest first."""
        return self._run(self._revisions(), "read the history")

    # --- in the loop thread -----------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], what: str, timeout: float | None = None) -> T:
        seconds = timeout or self.timeout
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(seconds)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise BrokerUnavailable(
                f"{what}: the broker at {self.url} did not answer within {seconds:.0f} s: "
                "check that it runs (KIT_CHANNEL_URL)"
            ) from exc
        except (nats.errors.Error, OSError) as exc:
            raise BrokerUnavailable(
                f"{what}: the broker at {self.url} failed ({type(exc).__name__}: {exc}): "
                "check that it runs (KIT_CHANNEL_URL)"
            ) from exc

    def _stop_loop(self) -> None:
        """End what is left (e.g. a call that timed out) in the loop's own thread, then stop it:
        never `run_until_complete` here, the caller may run a loop of its own (uvicorn's)."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                cleanup = asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self._loop)
                cleanup.result(self.timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=self.timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def _require_connection(self, what: str) -> None:
        if not self._nc.is_connected:
            raise BrokerUnavailable(
                f"{what}: the broker at {self.url} is not reachable now (reconnecting): "
                "check that it runs, then try again"
            )

    async def _open(self) -> None:
        async def on_reconnect() -> None:
            self._rewatch.set()

        async def on_error(exc: Exception) -> None:
            return None  # the reconnect loop handles it; calls say what failed

        self._rewatch = asyncio.Event()
        try:
            await asyncio.wait_for(
                self._nc.connect(
                    self.url,
                    name=f"kit-{self.model}",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # a replica waits for the broker forever
                    reconnect_time_wait=self.reconnect_wait,  # type: ignore[arg-type]
                    connect_timeout=max(1, int(self.timeout)),
                    reconnected_cb=on_reconnect,
                    error_cb=on_error,
                ),
                self.timeout,
            )
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            await self._nc.close()
            raise BrokerUnavailable(
                f"no broker answers at {self.url} ({type(exc).__name__}): start it "
                "(nats-server -js), or check KIT_CHANNEL_URL"
            ) from exc
        js = self._nc.jetstream(timeout=self.timeout)
        self._models = await _key_value(js, MODELS, history=HISTORY)
        self._reports = await _key_value(js, REPLICAS, ttl=self.replica_ttl)
        try:
            self._objects: ObjectStore = await js.object_store(ARTIFACTS)
        except nats.js.errors.NotFoundError:
            self._objects = await js.create_object_store(ARTIFACTS)
        self._js = js
        # the current record before the constructor returns (a late replica needs it at once);
        # none: nothing published yet, or deleted
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            self._latest = _record((await self._models.get(self.model)).value or b"")
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._heartbeat())]

    async def _follow(self) -> None:
        """Watch the model's key, anew after each reconnect (the broker may have restarted).

        A watcher hands the current value first, then each change. Its "nothing more" marker
        is not used: nats-py may send it before the first value when both race.
        """
        while True:
            self._rewatch.clear()
            try:
                watcher = await self._models.watch(self.model)
            except (nats.errors.Error, OSError):
                await asyncio.sleep(self.reconnect_wait)
                continue
            try:
                while not self._rewatch.is_set():
                    try:
                        entry = await watcher.updates(timeout=0.25)
                    except nats.errors.TimeoutError:
                        continue
                    if entry is None or entry.operation is not None or not entry.value:
                        continue  # the marker, or a delete: the last record stays
                    if (record := _record(entry.value)) is not None:
                        with self._lock:
                            self._latest = record
            finally:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await watcher.stop()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.replica_ttl / 3)
            with self._lock:
                state = self._state
            if state is not None and self._nc.is_connected:
                with contextlib.suppress(nats.errors.Error, OSError):  # the next beat retries
                    await self._put_state(state)

    async def _put_state(self, state: ReplicaState) -> None:
        self._require_connection("report")
        state = replace(state, heartbeat=datetime.now(UTC).isoformat(timespec="seconds"))
        data = json.dumps(asdict(state)).encode()
        await self._reports.put(f"{self.model}.{state.replica}", data)

    async def _replicas(self) -> list[ReplicaState]:
        self._require_connection("list replicas")
        prefix = f"$KV.{REPLICAS}.{self.model}."  # the keys, from the stream's subjects
        info = await self._js.stream_info(f"KV_{REPLICAS}", subjects_filter=f"{prefix}*")
        found: list[ReplicaState] = []
        for subject in sorted((info.state.subjects or {}) if info.state else {}):
            try:
                entry = await self._reports.get(subject.removeprefix(f"$KV.{REPLICAS}."))
                found.append(ReplicaState(**json.loads(entry.value or b"")))
            except nats.js.errors.KeyNotFoundError:
                continue  # expired or withdrawn since (KeyDeletedError is one)
            except (ValueError, TypeError):
                continue  # not a report of ours
        return found

    async def _publish(
        self,
        record: Channel,
        folder: Path | None,
        manifest: artifact.Manifest | None,
        after: str | None,
    ) -> Channel:
        self._require_connection("publish")
        where = f"the channel of {self.model} at {self.url}"
        revision, current = await self._current()
        check_after(current, after, where)
        stored = await self._stored_manifest(record.model)
        if manifest is not None and folder is not None:
            if stored is not None and stored.sha256 != manifest.sha256:
                raise ArtifactError(
                    f"the broker already holds another {record.model} (sha256 "
                    f"{stored.sha256[:12]}…, not {manifest.sha256[:12]}…): train or import "
                    "again to make a new version"
                )
            if stored is None:
                for file in (artifact.MODEL_FILE, artifact.MANIFEST_FILE):  # the manifest last
                    with (folder / file).open("rb") as handle:
                        await self._objects.put(object_name(record.model, file), handle)
        elif stored is None:
            raise ArtifactError(
                f"{record.model} is not on the broker at {self.url}: publish it from its folder"
            )
        published = stamped(record, (manifest or stored).sha256)  # type: ignore[union-attr]
        try:
            await self._models.update(self.model, json.dumps(asdict(published)).encode(), revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise PublishConflict(where) from None  # written between the read and this write
        return published

    async def _current(self) -> tuple[int, Channel | None]:
        """The key's revision (0: never written) and its record, read from the broker."""
        try:
            entry = await self._models.get(self.model)
        except nats.js.errors.KeyDeletedError as exc:
            return (exc.entry.revision or 0) if exc.entry else 0, None
        except nats.js.errors.KeyNotFoundError:
            return 0, None
        return entry.revision or 0, _record(entry.value or b"")

    async def _stored_manifest(self, tag: str) -> artifact.Manifest | None:
        try:
            await self._objects.get_info(object_name(tag, artifact.MODEL_FILE))
            result = await self._objects.get(object_name(tag, artifact.MANIFEST_FILE))
        except nats.js.errors.ObjectNotFoundError:
            return None
        return artifact.Manifest.from_dict(json.loads(result.data or b"{}"))

    async def _download(self, tag: str, folder: Path) -> None:
        self._require_connection(f"download {tag}")
        for file in (artifact.MANIFEST_FILE, artifact.MODEL_FILE):
            try:
                with (folder / file).open("wb") as handle:
                    await self._objects.get(object_name(tag, file), writeinto=handle)
            except nats.js.errors.ObjectNotFoundError as exc:
                raise ArtifactError(
                    f"{tag} is not on the broker at {self.url}: publish it first"
                ) from exc
            except nats.js.errors.DigestMismatchError as exc:
                raise ArtifactError(
                    f"the broker's copy of {tag} is damaged ({file}: the object store's sha256 "
                    "does not match its chunks): publish the version again"
                ) from exc

    async def _revisions(self) -> list[Channel]:
        self._require_connection("read the history")
        try:
            entries = await self._models.history(self.model)
        except nats.js.errors.NoKeysError:
            return []
        records = (_record(e.value) for e in entries if e.operation is None and e.value)
        return [record for record in records if record is not None]

    async def _close(self) -> None:
        with self._lock:
            state, self._state = self._state, None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if state is not None and self._nc.is_connected:
            with contextlib.suppress(nats.errors.Error, OSError):
                await self._reports.purge(f"{self.model}.{state.replica}")
        await self._nc.close()


async def _cancel_the_rest() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _key_value(js: Any, bucket: str, *, history: int = 1, ttl: float | None = None) -> Any:
    """The bucket, made if it is not there yet (the same config from every caller)."""
    try:
        return await js.key_value(bucket)
    except nats.js.errors.NotFoundError:
        return await js.create_key_value(bucket=bucket, history=history, ttl=ttl)


if TYPE_CHECKING:  # mypy proves the broker satisfies the seam

    def _is_a_channel(channel: NatsChannel) -> ChannelBackend:
        return channel
