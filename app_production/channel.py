"""The publish channel: model versions published as data, followed by the running service.

One small JSON file per running service (`<home>/channel-<service id>.json`):

    {"model": "penguins:v2", "history": ["penguins:v1"], "published_at": "..."}

`kit promote` creates it for the service it starts (the service learns its path from
KIT_CHANNEL); `kit publish` and `kit rollback` rewrite it, atomically (a reader sees the old or
the new file, never half of one). The service polls it (`Follower`): a new tag is loaded from
the BentoML store, verified (sha256 before unpickling), warmed up and swapped in at once; a
version that fails any of this is refused and the old one keeps serving. No restart, no failed
request: a batch is answered entirely by one version, and every answer names its version.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from app_production.private_files import write_private

Model = TypeVar("Model")


@dataclass
class Channel:
    model: str  # BentoML model tag, e.g. "penguins:v2"
    history: list[str] = field(default_factory=list)  # what was served before, oldest first
    published_at: str = ""
    id: str = ""  # new at each save: a refusal is about one publish, not about a tag forever

    def save(self, path: Path) -> None:
        self.published_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.id = uuid.uuid4().hex
        write_private(path, json.dumps(asdict(self), indent=2) + "\n")  # 0600, atomic

    @classmethod
    def load(cls, path: Path) -> Channel | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None  # missing or being replaced: try again at the next poll


def channel_path(home: Path, service_id: str) -> Path:
    return home / f"channel-{service_id}.json"


class Follower(Generic[Model]):
    """Polls a channel; loads, checks and swaps in each newly published model, in a thread."""

    def __init__(
        self,
        path: Path,
        serving: str,
        load: Callable[[str], Model],
        swap: Callable[[str, Model], None],
        interval: float = 0.25,
    ) -> None:
        self.path, self.serving, self.interval = path, serving, interval
        self._load, self._swap = load, swap
        self.refused: dict[str, str] | None = None  # {"model": tag, "id": publish, "reason"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="channel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        """One poll: follow the channel if it names another model than the one served."""
        channel = Channel.load(self.path)
        if channel is None or channel.model == self.serving:
            return
        if self.refused is not None and self.refused["id"] == channel.id:
            return  # this publish was refused already; a new one is tried again
        try:
            model = self._load(channel.model)
        except Exception as exc:  # refused: the old model keeps serving
            reason = f"{type(exc).__name__}: {exc}"
            self.refused = {"model": channel.model, "id": channel.id, "reason": reason}
            print(f"refused {channel.model}: {self.refused['reason']}", flush=True)
            return
        self._swap(channel.model, model)
        print(f"now serving {channel.model} (was {self.serving})", flush=True)
        self.serving, self.refused = channel.model, None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
