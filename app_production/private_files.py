"""Files of a running service that only their owner may read (mode 0600): the state file, the
channel file and the service log name ports, pids, models and may echo request errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

PRIVATE = 0o600


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, owner-only from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(tmp, PRIVATE)  # an older tmp file keeps its mode through O_CREAT
    tmp.replace(path)  # readers (a running UI) see the old or the new file, never half


def open_private_log(path: Path) -> IO[str]:
    """A log file for a child process's output, truncated, owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    os.chmod(path, PRIVATE)
    return os.fdopen(descriptor, "w")
