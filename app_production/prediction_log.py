"""The service's prediction log: what production sees (inputs, answers, version, latency, warnings).

Written off the request path into SQLite files in one folder, rotated by size; read back by
`read_log` (for `kit monitor`). Logging never slows or fails a prediction: what cannot be
queued or written is dropped and counted (`PredictionLog.stats`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import random
import sqlite3
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700
PATTERN = "predictions-*.sqlite"
MAX_BATCH = 1000  # entries per transaction: bounds how long a reader may wait on a commit
FLUSH_S = 0.25  # the writer writes what is queued this often (a row is readable within it)
# Each row is stored as its JSON array (one parse per row when writing: columns extracted at
# insert time cost the writer 5 µs a row, this 2); the `predictions` view shows it in columns.
_INSERT = (
    "INSERT INTO entries(ts, entry) SELECT json_extract(value, '$[0]'), value FROM json_each(?)"
)
_SELECT = "SELECT entry FROM entries WHERE ts >= ? AND ts < ? ORDER BY ts, rowid"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries(ts REAL, entry TEXT);
CREATE INDEX IF NOT EXISTS entries_ts ON entries(ts);
CREATE VIEW IF NOT EXISTS predictions AS SELECT ts,
  json_extract(entry, '$[1]') AS model, json_extract(entry, '$[2]') AS version,
  json_extract(entry, '$[3]') AS latency_ms, json_extract(entry, '$[4]') AS record,
  json_extract(entry, '$[5]') AS prediction, json_extract(entry, '$[6]') AS warnings
FROM entries;
"""
_COUNTERS = ("written", "dropped_queue_full", "failed_write", "sampled_out", "dropped_closed")


@dataclass
class LoggedPrediction:
    """One answer of the service, as logged (one row of the `predictions` view)."""

    ts: float  # epoch seconds (time.time()) when the answer was made
    model: str  # "penguins"
    version: str  # "v2"
    latency_ms: float  # the request's time in the service
    record: dict[str, Any]  # the validated input record (JSON-able: str/float/int/None)
    prediction: dict[str, Any]  # the answer's JSON (label + probabilities, or value; ...)
    warnings: list[str]  # the prediction's warnings (expected-range messages)


class PredictionLog:
    """A prediction log that never slows or fails the predictions it records.

    Lifecycle: create one per worker process (in the service's ``__init__``), ``submit`` the
    entries of each answered request, ``close`` at shutdown::

        log = PredictionLog(Path("/var/lib/kit/predictions"), sample=0.1)
        log.submit([LoggedPrediction(time.time(), "penguins", "v2", 3.2, record, answer, [])])
        log.stats()  # {"written": 1, "dropped_queue_full": 0, "failed_write": 0, ...}
        log.close()  # writes what is queued (at most `timeout` seconds), stops the writer

    The caller's thread only samples and queues (``submit`` never blocks, never raises). A
    daemon writer thread, started on the first ``submit``, takes everything queued (up to
    ``MAX_BATCH`` entries) and writes it as one transaction into the current file,
    ``predictions-<UTC %Y%m%dT%H%M%S%f>-<pid>.sqlite``: several worker processes may log into one
    folder, each into its own files. A file larger than ``max_bytes`` is closed and the next
    batch starts a new one. Files are owner-only (0600), a folder the log creates too (0700).

    Every entry ends in exactly one counter of ``stats()``: ``sampled_out`` (kept with
    probability ``sample``, from ``random.Random(seed)``), ``dropped_queue_full`` (more than
    ``queue_size`` entries waiting), ``failed_write`` (disk full, folder unwritable or deleted:
    one line on stderr per distinct error; the next batch tries again, in a new file),
    ``dropped_closed`` (submitted after ``close``, or still queued when its timeout ran out), or
    ``written``. NaN and infinity are logged as JSON's null (a record the service took has
    none). ``submit`` encodes each entry at once (orjson, about a microsecond).

    Test seam: a subclass may override ``_write_batch`` (called in the writer thread).
    """

    def __init__(
        self,
        folder: Path,
        *,
        sample: float = 1.0,
        max_bytes: int = 64 << 20,
        queue_size: int = 10_000,
        seed: int | None = None,
    ) -> None:
        if not 0 < sample <= 1:
            raise ValueError(
                f"sample must be in (0, 1], e.g. 0.1 to log one answer in ten, got {sample}"
            )
        if max_bytes <= 0 or queue_size <= 0:
            raise ValueError(
                f"max_bytes and queue_size must be positive, got {max_bytes}, {queue_size}"
            )
        self.folder = Path(folder)
        self.sample = sample
        self.max_bytes = max_bytes
        self._random = random.Random(seed)  # noqa: S311 (sampling, not security)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=queue_size)
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._reported: set[tuple[str, str]] = set()
        self._connection: sqlite3.Connection | None = None
        self._path: Path | None = None
        self._rows_in_file = 0

    def submit(self, entries: list[LoggedPrediction]) -> None:
        """Queue `entries` for the writer (sampled); never blocks, never raises."""
        with contextlib.suppress(Exception):  # a broken log must never fail a prediction
            self._submit(entries)

    def _submit(self, entries: list[LoggedPrediction]) -> None:
        if self._closed:
            self._count("dropped_closed", len(entries))
            return
        if self._thread is None:
            self._start()
        kept = entries
        if self.sample < 1:
            kept = [e for e in entries if self._random.random() < self.sample]
            self._count("sampled_out", len(entries) - len(kept))
        for queued, entry in enumerate(kept):
            try:  # encoded here, ~1 µs: the queue then holds bytes, which the collector skips
                row = _encode(entry)
            except (TypeError, ValueError) as exc:
                self._count("failed_write", 1)
                self._report(exc)
                continue
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self._count("dropped_queue_full", len(kept) - queued)
                return

    def stats(self) -> dict[str, int]:
        """How many entries were written, dropped (queue full, closed), failed or sampled out."""
        with self._lock:
            return dict(self._counts)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most `timeout` seconds), then stop the writer thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._deadline = time.monotonic() + timeout
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wakes the writer; if full, it is awake anyway
        thread.join(timeout + 0.5)
        if not thread.is_alive():  # entries that raced past the closed check: counted, not lost
            self._count("dropped_closed", len(self._take(wait=False, limit=1 << 62)))

    # --- the writer thread -------------------------------------------------------------------

    def _count(self, name: str, n: int) -> None:
        with self._lock:
            self._counts[name] += n

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="prediction-log", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        """Every FLUSH_S (at once when closing): everything queued, in transactions of at most
        MAX_BATCH. Waking per answer would cost a transaction per request (`kit bench`
        measured 14% of the service's throughput at one caller); on a timer it is one per
        interval, whatever the load."""
        while True:
            try:
                if not self._stopping.is_set():
                    self._stopping.wait(FLUSH_S)
                while batch := self._take(wait=False):
                    if self._stopping.is_set() and time.monotonic() > self._deadline:
                        self._count("dropped_closed", len(batch))
                    else:
                        self._write(batch)
                if self._stopping.is_set() and self._queue.empty():
                    break
            except Exception as exc:  # never let the thread die
                self._report(exc)
        with contextlib.suppress(Exception):
            self._close_file()

    def _take(self, *, wait: bool = True, limit: int = MAX_BATCH) -> list[bytes]:
        try:
            first = self._queue.get(timeout=0.5) if wait else self._queue.get_nowait()
        except queue.Empty:
            return []
        batch = [] if first is None else [first]
        while len(batch) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                batch.append(item)
        return batch

    def _write(self, batch: list[bytes]) -> None:
        try:
            self._write_batch(batch)
        except Exception as exc:  # OSError, sqlite3.Error, or an entry json cannot encode
            self._count("failed_write", len(batch))
            self._report(exc)
            self._discard_file()
        else:
            self._count("written", len(batch))

    def _write_batch(self, entries: list[bytes]) -> None:
        """Write `entries` in one transaction into the current file; rotate it when too big."""
        if self._connection is not None and (self._path is None or not self._path.exists()):
            self._close_file()  # deleted meanwhile (WAL would write on into the unlinked file)
        connection = self._connection or self._open_file()
        # One statement per batch: sqlite3 gives up the GIL at every row of an executemany,
        # and each hand-back cost the serving thread more than the row itself.
        payload = b"[" + b",".join(entries) + b"]"
        with connection:
            connection.execute(_INSERT, (payload.decode(),))
        self._rows_in_file += len(entries)
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        if pages * page_size > self.max_bytes:
            self._close_file()

    def _open_file(self) -> sqlite3.Connection:
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
            os.chmod(self.folder, PRIVATE_FOLDER)
        while True:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            path = self.folder / f"predictions-{stamp}-{os.getpid()}.sqlite"
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
                break
            except FileExistsError:
                time.sleep(1e-6)
        self._path, self._rows_in_file = path, 0
        self._connection = sqlite3.connect(path, timeout=5.0)
        # WAL + NORMAL: a commit is not an fsync (a crash loses at most the last commits of a
        # log, never the file), and readers (kit monitor) do not block the writer.
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(_SCHEMA)
        return self._connection

    def _close_file(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _discard_file(self) -> None:
        """After a failed write: close the file; remove it if it never held a row."""
        path, empty = self._path, self._rows_in_file == 0
        with contextlib.suppress(Exception):
            self._close_file()
        if path is not None and empty:
            suffixes = ("", "-journal", "-wal", "-shm")
            for leftover in (path.with_name(path.name + suffix) for suffix in suffixes):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        self._path = None

    def _report(self, exc: BaseException) -> None:
        """One stderr line per distinct error (the same disk-full error is said once)."""
        detail = getattr(exc, "sqlite_errorname", None) or getattr(exc, "errno", None) or str(exc)
        key = (type(exc).__name__, str(detail))
        if key in self._reported:
            return
        self._reported.add(key)
        with contextlib.suppress(Exception):
            print(
                f"prediction log: cannot write to {self.folder}: {exc}; "
                "predictions are served, not logged",
                file=sys.stderr,
                flush=True,
            )


def _encode(entry: LoggedPrediction) -> bytes:
    """One row as JSON: [ts, model, version, latency_ms, record, prediction, warnings]."""
    row = [entry.ts, entry.model, entry.version, entry.latency_ms]
    row += [entry.record, entry.prediction, entry.warnings]
    return orjson.dumps(row, default=_jsonable, option=orjson.OPT_SERIALIZE_NUMPY)


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays as numbers and lists; anything else as its text."""
    for method in ("item", "tolist"):
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    return str(value)


def log_files(folder: Path) -> list[Path]:
    """The log's files, oldest first (by the UTC time in their names)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(PATTERN) if p.is_file())


def read_log(
    folder: Path, since: float | None = None, until: float | None = None
) -> list[LoggedPrediction]:
    """Every entry of every log file in `folder` (ts within [since, until)), oldest first;
    a file being written is read as far as it is committed; a damaged file is skipped with a
    warning (warnings.warn), not a crash; a missing folder -> []."""
    entries: list[LoggedPrediction] = []
    for path in log_files(folder):
        try:
            entries.extend(_read_file(path, since, until))
        except (sqlite3.Error, ValueError, OSError) as exc:
            if path.exists():  # else removed while we read: nothing to say
                warnings.warn(
                    f"prediction log: skipped damaged file {path}: {exc}", UserWarning, stacklevel=2
                )
    entries.sort(key=lambda e: e.ts)  # stable: equal times keep the files' order
    return entries


def _read_file(path: Path, since: float | None, until: float | None) -> list[LoggedPrediction]:
    bounds = (-math.inf if since is None else since, math.inf if until is None else until)
    # read-write, so that a hot journal left by a crashed writer is rolled back, not an error
    uri = path.resolve().as_uri() + "?mode=rw"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as connection:
        try:
            rows = connection.execute(_SELECT, bounds).fetchall()
        except sqlite3.OperationalError as exc:
            if str(exc).startswith("no such table"):
                return []  # a file just created, its table not yet committed
            raise
    return [LoggedPrediction(*json.loads(entry)) for (entry,) in rows]
