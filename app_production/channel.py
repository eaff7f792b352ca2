"""The published record: which model version every replica of a service should serve.

The same record in every channel (app_production/channel_protocol.py): on one machine, one
small JSON file per running service (`<home>/channel-<service id>.json`,
app_production/file_channel.py); across machines, a key of a broker's bucket
(app_production/broker_channel.py):

    {"model": "penguins:v2", "history": ["penguins:v1"], "sha256": "...", "published_at": "...",
     "id": "..."}

`kit promote` creates the file for the service it starts (the service learns its path from
KIT_CHANNEL); `kit publish` and `kit rollback` rewrite it, atomically (a reader sees the old or
the new file, never half of one). Each replica follows it (app_production/follower.py): a new
tag is fetched, verified (sha256 before unpickling, and against the record's), warmed up and
swapped in at once; a version that fails any of this is refused and the old one keeps serving.
No restart, no failed request: a batch is answered entirely by one version, and every answer
names its version.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app_production.private_files import write_private


@dataclass
class Channel:
    model: str  # BentoML model tag, e.g. "penguins:v2"
    history: list[str] = field(default_factory=list)  # what was served before, oldest first
    published_at: str = ""
    id: str = ""  # new at each save: a refusal is about one publish, not about a tag forever
    sha256: str = ""  # the model file's, as the publisher verified it ("" from an older kit)

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
