"""The file channel: one service on one machine follows the record `kit publish` writes.

    <home>/channel-<service id>.json               the record (app_production/channel.py)
    <home>/channel-<service id>.replicas/<id>.json  each replica's report: a ReplicaState and
                                                    the pid of the process that wrote it

The artifacts stay in the BentoML store of the kit home, which the service shares: `publish`
copies the version there (verified first), `fetch` returns its folder there, verified again.
A report is live while the process that wrote it runs: on one machine the pid says it, so no
heartbeat is needed (a worker that dies drops out at once).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from app_production.channel import Channel
from app_production.channel_protocol import ReplicaState, check_after, split_tag, stamped
from app_production.private_files import write_private
from model import artifact
from model.errors import ArtifactError, UsageError

if TYPE_CHECKING:
    from app_production.channel_protocol import ChannelBackend

_STATE_FIELDS = {f.name for f in fields(ReplicaState)}


class FileChannel:
    """The channel of one service, in the kit home of this machine (see ChannelBackend)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reports = path.with_suffix(".replicas")
        self._mine: Path | None = None

    def latest(self) -> Channel | None:
        return Channel.load(self.path)

    def publish(
        self, record: Channel, folder: Path | None = None, after: str | None = None
    ) -> Channel:
        """Copy `folder`'s version into the BentoML store (verified), then write the record."""
        from app_production.promote import save_to_store

        split_tag(record.model)
        if folder is not None:
            manifest = artifact.verify(folder)
            if save_to_store(folder, manifest) != record.model:
                raise UsageError(
                    f"{folder} holds {manifest.name}:{manifest.version}, not {record.model}"
                )
        else:
            manifest = artifact.verify(_store_folder(record.model))
        with self._locked():
            check_after(self.latest(), after, f"the channel file {self.path}")
            published = stamped(record, manifest.sha256)
            write_private(self.path, json.dumps(asdict(published), indent=2) + "\n")
        return published

    def fetch(self, tag: str, into: Path) -> Path:
        """The version's folder in the BentoML store (`into` is not needed: nothing to copy)."""
        folder = _store_folder(tag)
        artifact.verify(folder)  # sha256 before anything is unpickled
        return folder

    def report(self, replica: str, serving: str, refused: dict[str, str] | None = None) -> None:
        state = ReplicaState(
            replica, serving, refused, datetime.now(UTC).isoformat(timespec="seconds")
        )
        self.reports.mkdir(mode=0o700, exist_ok=True)
        self._mine = self.reports / f"{replica}.json"
        write_private(self._mine, json.dumps({**asdict(state), "pid": os.getpid()}) + "\n")

    def replicas(self) -> list[ReplicaState]:
        """The reports whose process still runs, by replica id."""
        found: list[ReplicaState] = []
        for path in sorted(self.reports.glob("*.json")):
            try:
                report = json.loads(path.read_text())
                if _running(int(report["pid"])):
                    found.append(ReplicaState(**{k: report[k] for k in _STATE_FIELDS}))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # being replaced, or not a report of ours
        return found

    def close(self) -> None:
        if self._mine is not None:
            self._mine.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One publish at a time on this machine (the reports' folder is the lock)."""
        self.reports.mkdir(mode=0o700, exist_ok=True)
        descriptor = os.open(self.reports, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def _store_folder(tag: str) -> Path:
    import bentoml

    try:
        return Path(bentoml.models.get(tag).path)
    except bentoml.exceptions.NotFound as exc:
        raise ArtifactError(
            f"{tag} is not in the service's BentoML store: publish it with `kit publish` "
            "(which copies it there) from the kit's store"
        ) from exc


def _running(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    return False


if TYPE_CHECKING:  # mypy proves the file satisfies the seam

    def _is_a_channel(channel: FileChannel) -> ChannelBackend:
        return channel
