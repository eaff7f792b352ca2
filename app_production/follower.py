"""The follower: each replica of the service serves the version its channel publishes."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from app_production.channel_protocol import ChannelBackend
from model import artifact
from model.errors import ArtifactError, ServiceUnavailable

Model = TypeVar("Model")
_NOT_AN_ID = re.compile(r"[^A-Za-z0-9_-]+")


def replica_id() -> str:
    """KIT_REPLICA_ID (a pod's name, from the downward API), else host name and service pid.

    The pid is the parent's (BentoML's supervisor): both workers of one service are one
    replica, so the standby that takes over reports under the same id."""
    given = os.environ.get("KIT_REPLICA_ID", "").strip()
    if given:
        return given
    host = _NOT_AN_ID.sub("-", socket.gethostname()).strip("-")[:100] or "host"
    return f"{host}-{os.getppid()}"


class Follower(Generic[Model]):
    """Follows one channel in a thread: fetch, verify, load and swap in each published version.

    Each poll (`check`) reads the channel's latest record. If it names another version than
    the one served, and this publish was not refused already, the follower fetches the
    artifact (the channel checks its sha256 against its manifest), checks it is the file the
    publisher verified (the record's sha256), loads and warms it up (`load`) and swaps it in
    (`swap`: between two batches). It reports what it serves, or why it refused a publish,
    under its replica id; a refused version changes nothing, the old one keeps serving, and a
    new publish of the same tag is tried again.

    A channel that cannot be reached (a broker down, at start or later) changes nothing
    either: the replica serves what it serves, opens the channel again every `retry` seconds
    and catches up when it answers. A version published before the replica started is served
    from its first request: the service calls `check()` once before it is ready.
    """

    def __init__(
        self,
        open_channel: Callable[[], ChannelBackend],
        replica: str,
        serving: str,
        load: Callable[[Path], Model],
        swap: Callable[[str, Model], None],
        cache: Path,
        *,
        interval: float = 0.25,
        retry: float = 2.0,
    ) -> None:
        self.replica, self.serving, self.cache = replica, serving, cache
        self.interval, self.retry = interval, retry
        self._open, self._load, self._swap = open_channel, load, swap
        self.channel: ChannelBackend | None = None
        self.refused: dict[str, str] | None = None  # {"model": tag, "id": publish, "reason"}
        self._reported = False
        self._opened_at = -float("inf")
        self._unavailable = ""  # the last reason printed, so a long outage prints once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="channel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop following and withdraw this replica's report."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self.channel is not None:
            self.channel.close()

    def check(self) -> None:
        """One poll: follow the channel if it names another version than the one served."""
        channel = self._channel()
        if channel is None:
            return
        if not self._reported:
            self._report(channel)
        record = channel.latest()
        if record is None or record.model == self.serving:
            return
        if self.refused is not None and self.refused["id"] == record.id:
            return  # this publish was refused already; a new one is tried again
        try:
            folder = channel.fetch(record.model, self.cache)
            sha256 = artifact.verify(folder).sha256
            if record.sha256 and sha256 != record.sha256:
                raise ArtifactError(
                    f"{record.model}'s model file has sha256 {sha256[:12]}…, not the "
                    f"{record.sha256[:12]}… its publisher verified: publish it again"
                )
            model = self._load(folder)
        except ServiceUnavailable as exc:  # the broker went away mid-fetch: try again later
            self._say_unavailable(exc)
            return
        except Exception as exc:  # refused: the old model keeps serving
            reason = f"{type(exc).__name__}: {exc}"
            self.refused = {"model": record.model, "id": record.id, "reason": reason}
            print(f"refused {record.model}: {reason}", flush=True)
            self._report(channel)
            return
        self._swap(record.model, model)
        print(f"now serving {record.model} (was {self.serving})", flush=True)
        self.serving, self.refused = record.model, None
        self._report(channel)

    def _channel(self) -> ChannelBackend | None:
        if self.channel is None and time.monotonic() - self._opened_at >= self.retry:
            self._opened_at = time.monotonic()
            try:
                self.channel = self._open()
            except ServiceUnavailable as exc:
                self._say_unavailable(exc)
        return self.channel

    def _report(self, channel: ChannelBackend) -> None:
        try:
            channel.report(self.replica, self.serving, self.refused)
        except ServiceUnavailable as exc:  # a broker's heartbeat repeats it once back
            self._say_unavailable(exc)
        self._reported = True

    def _say_unavailable(self, exc: ServiceUnavailable) -> None:
        if str(exc) != self._unavailable:
            self._unavailable = str(exc)
            print(f"channel unavailable, still serving {self.serving}: {exc}", flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # e.g. a full disk: say it, keep serving, poll again
                print(f"channel check failed, still serving {self.serving}: {exc!r}", flush=True)
