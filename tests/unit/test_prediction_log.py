"""The prediction log: real SQLite files in tmp_path, a real writer thread, a real full disk."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import stat
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from app_production.prediction_log import LoggedPrediction, PredictionLog, log_files, read_log

LINE = "prediction log: cannot write to"


def entry(i: int, ts: float | None = None) -> LoggedPrediction:
    return LoggedPrediction(
        ts=1_700_000_000.0 + i if ts is None else ts,
        model="penguins",
        version="v2",
        latency_ms=1.5 + i / 1000,
        record={"id": i, "island": "Biscoe", "bill_length_mm": 40.0 + i % 7, "sex": None},
        prediction={"label": "Adelie", "probabilities": {"Adelie": 0.9, "Gentoo": 0.1}},
        warnings=[] if i % 3 else [f"bill_length_mm {i} is outside the sample's range"],
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for the writer")
        time.sleep(0.005)


def processed(log: PredictionLog) -> int:
    s = log.stats()
    return s["written"] + s["failed_write"]


def test_round_trip_in_order_with_time_filter(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    log = PredictionLog(folder)
    sent = [entry(i) for i in range(250)]
    for start in range(0, 250, 25):
        log.submit(sent[start : start + 25])
    log.close()
    assert log.stats() == {
        "written": 250,
        "dropped_queue_full": 0,
        "failed_write": 0,
        "sampled_out": 0,
        "dropped_closed": 0,
    }
    assert read_log(folder) == sent
    assert read_log(folder, since=sent[10].ts, until=sent[20].ts) == sent[10:20]
    assert read_log(folder, since=sent[240].ts) == sent[240:]
    assert read_log(folder, until=sent[0].ts) == []
    assert read_log(tmp_path / "missing") == []
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in log_files(folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.name.startswith("predictions-") and path.name.endswith(f"-{os.getpid()}.sqlite")


def test_entries_from_several_files_come_back_oldest_first(tmp_path: Path) -> None:
    first, second = PredictionLog(tmp_path), PredictionLog(tmp_path)  # as two workers would
    first.submit([entry(i) for i in range(0, 20, 2)])
    second.submit([entry(i) for i in range(1, 20, 2)])
    first.close()
    second.close()
    assert len(log_files(tmp_path)) == 2
    assert [e.record["id"] for e in read_log(tmp_path)] == list(range(20))


def test_non_finite_numbers_are_logged_as_missing(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    odd = entry(0)
    odd.record["bill_length_mm"] = math.inf
    odd.prediction = {"value": math.nan}
    log.submit([odd])
    log.close()
    (back,) = read_log(tmp_path)
    assert back.record["bill_length_mm"] is None and back.prediction["value"] is None
    assert back.record["id"] == 0 and log.stats()["written"] == 1


def test_sampling_keeps_about_the_asked_share_and_counts_the_rest(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, sample=0.1, seed=7)
    for start in range(0, 20_000, 100):
        log.submit([entry(i) for i in range(start, start + 100)])
    log.close(timeout=30)
    s = log.stats()
    assert 1_600 <= s["written"] <= 2_400
    assert s["written"] + s["sampled_out"] == 20_000
    assert len(read_log(tmp_path)) == s["written"]


@pytest.mark.parametrize("sample", [0.0, -0.5, 1.5])
def test_a_sample_outside_0_1_is_refused(tmp_path: Path, sample: float) -> None:
    with pytest.raises(ValueError, match=r"sample must be in \(0, 1\]"):
        PredictionLog(tmp_path, sample=sample)


def test_rotation_by_size_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, max_bytes=64 << 10)
    for start in range(0, 3_000, 50):
        log.submit([entry(i) for i in range(start, start + 50)])
        wait_for(lambda n=start + 50: processed(log) >= n)  # one batch per transaction
    log.close()
    files = log_files(tmp_path)
    assert len(files) >= 3, files
    assert [e.record["id"] for e in read_log(tmp_path)] == list(range(3_000))
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_size <= (64 << 10) + (32 << 10)  # at most one batch beyond


class BlockedLog(PredictionLog):
    """A log whose writer waits for `release` before each batch (the test's seam)."""

    def __init__(self, folder: Path, queue_size: int) -> None:
        super().__init__(folder, queue_size=queue_size)
        self.writing = threading.Event()
        self.release = threading.Event()

    def _write_batch(self, entries: list[bytes]) -> None:
        self.writing.set()
        assert self.release.wait(30)
        super()._write_batch(entries)


def test_a_full_queue_drops_and_counts_without_waiting(tmp_path: Path) -> None:
    log = BlockedLog(tmp_path, queue_size=10)
    log.submit([entry(0)])
    assert log.writing.wait(5)  # the writer holds entry 0 and waits
    returned: list[int] = []

    def submit_many() -> None:
        for i in range(1, 61):
            log.submit([entry(i)])
            returned.append(i)

    caller = threading.Thread(target=submit_many, daemon=True)
    caller.start()
    caller.join(timeout=5)
    try:
        assert not caller.is_alive(), "submit blocked while the writer was busy"
        assert returned == list(range(1, 61))
        assert log.stats()["dropped_queue_full"] == 50
    finally:
        log.release.set()
    log.close()
    assert log.stats()["written"] == 11
    assert [e.record["id"] for e in read_log(tmp_path)] == list(range(11))


def test_close_is_bounded_by_its_timeout_and_counts_what_it_left(tmp_path: Path) -> None:
    log = BlockedLog(tmp_path, queue_size=100)
    log.submit([entry(0)])
    assert log.writing.wait(5)
    log.submit([entry(i) for i in range(1, 21)])
    started = time.monotonic()
    log.close(timeout=0.2)  # the writer is stuck in a batch: close must not wait for it
    assert time.monotonic() - started < 2
    log.release.set()
    wait_for(lambda: log.stats()["written"] + log.stats()["dropped_closed"] == 21)
    assert log.stats()["written"] == 1  # the batch in hand; the 20 still queued were given up


def test_submit_after_close_is_counted_not_written(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.close()
    log.submit([entry(0), entry(1)])
    assert log.stats()["dropped_closed"] == 2
    assert read_log(tmp_path) == []


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (64 << 10, 4 << 10, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                continue
    return filler


def test_a_full_disk_counts_failures_says_so_once_and_recovers(
    small_disk: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = small_disk / "log"
    log = PredictionLog(folder)
    try:
        log.submit([entry(i) for i in range(10)])
        wait_for(lambda: processed(log) >= 10)
        filler = fill(small_disk)
        for start in range(10, 40, 10):
            log.submit([entry(i) for i in range(start, start + 10)])  # never raises
            wait_for(lambda n=start + 10: processed(log) >= n)
        assert log.stats()["failed_write"] == 30
        filler.unlink()
        log.submit([entry(i) for i in range(40, 50)])
        wait_for(lambda: processed(log) >= 50)
    finally:
        log.close()
    assert log.stats()["written"] == 20
    lines = [line for line in capfd.readouterr().err.splitlines() if LINE in line]
    assert len(lines) == 1, lines
    assert str(folder) in lines[0] and "predictions are served, not logged" in lines[0]
    ids = [e.record["id"] for e in read_log(folder)]
    assert ids == list(range(10)) + list(range(40, 50))


def test_a_folder_that_cannot_be_created_is_counted_not_raised(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    log = PredictionLog(tmp_path / "a-file" / "log")
    log.submit([entry(0), entry(1)])
    wait_for(lambda: log.stats()["failed_write"] == 2)
    log.submit([entry(2)])
    wait_for(lambda: log.stats()["failed_write"] == 3)
    log.close()
    assert log.stats()["written"] == 0
    lines = [line for line in capfd.readouterr().err.splitlines() if LINE in line]
    assert len(lines) == 1, lines


def test_a_damaged_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.submit([entry(i) for i in range(5)])
    log.close()
    (tmp_path / "predictions-20000101T000000000000-1.sqlite").write_bytes(os.urandom(8192))
    with pytest.warns(UserWarning, match="skipped damaged file"):
        back = read_log(tmp_path)
    assert [e.record["id"] for e in back] == list(range(5))


def test_a_file_being_written_is_read_as_far_as_committed(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.submit([entry(i) for i in range(5)])
    log.close()
    (path,) = log_files(tmp_path)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN")
        writer.execute("INSERT INTO entries(ts, entry) VALUES (1, '[]')")  # not committed
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert [e.record["id"] for e in read_log(tmp_path)] == list(range(5))
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_an_empty_new_file_reads_as_no_entries(tmp_path: Path) -> None:
    (tmp_path / "predictions-20000101T000000000000-1.sqlite").touch()  # created, no table yet
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_log(tmp_path) == []


def test_a_deleted_folder_fails_one_batch_then_is_made_again(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "log"
    log = PredictionLog(folder)
    log.submit([entry(0)])
    wait_for(lambda: processed(log) >= 1)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    for i in range(1, 4):
        log.submit([entry(i)])
        wait_for(lambda n=i + 1: processed(log) >= n)
    log.close()
    s = log.stats()
    assert s["written"] + s["failed_write"] == 4 and s["failed_write"] <= 1, s
    assert [e.record["id"] for e in read_log(folder)][-2:] == [2, 3]
    assert (
        len([line for line in capfd.readouterr().err.splitlines() if LINE in line])
        == s["failed_write"]
    )


def test_a_log_file_reads_in_columns_with_plain_sql(tmp_path: Path) -> None:
    """Each row is stored as one JSON array; the `predictions` view gives anyone with sqlite3
    the columns (what `sqlite3 FILE 'SELECT version, latency_ms FROM predictions'` shows)."""
    log = PredictionLog(tmp_path)
    log.submit([entry(i) for i in range(3)])
    log.close()
    (path,) = log_files(tmp_path)
    sql = "SELECT ts, model, version, latency_ms, record, prediction, warnings FROM predictions"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(sql + " WHERE ts >= ? ORDER BY ts", (1_700_000_001,)).fetchall()
    assert [row[:4] for row in rows] == [
        (1_700_000_001.0, "penguins", "v2", 1.501),
        (1_700_000_002.0, "penguins", "v2", 1.502),
    ]
    assert json.loads(rows[0][4]) == entry(1).record
    assert json.loads(rows[0][5]) == entry(1).prediction
    assert [json.loads(row[6]) for row in rows] == [[], []]
