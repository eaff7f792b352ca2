"""The service's prediction log, for real: `kit promote` with KIT_PREDICTION_LOG, predictions
through RemotePredictor, the rows read back; and a log whose disk is full or cannot be written
fails no prediction (the misses are counted in /metadata)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app_production.client import RemotePredictor
from app_production.prediction_log import read_log
from tests.helpers import GENTOO, promote, stop_promoted, write_figures

pytestmark = pytest.mark.reliability


def _predict(url: str, count: int) -> tuple[int, int]:
    """(answered, failed) of `count` single-record predictions, no retries."""
    client = RemotePredictor(url, retries=0)
    answered = failed = 0
    try:
        for _ in range(count):
            try:
                client.predict([GENTOO])
                answered += 1
            except Exception:  # counted: the tests want none
                failed += 1
    finally:
        client.close()
    return answered, failed


def _stats(url: str) -> dict[str, int]:
    client = RemotePredictor(url)
    try:
        stats: dict[str, int] = client.metadata()["prediction_log"]
    finally:
        client.close()
    return stats


def _until(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_what_the_service_answers_is_logged_off_the_request_path(kit_home: Path) -> None:
    service = promote(kit_home, KIT_PREDICTION_LOG="on")
    folder = kit_home / "prediction-log"
    try:
        _until(lambda: len(read_log(folder)) > 0)  # kit promote's own parity check, logged too
        began = time.time()
        assert _predict(service.url, 50) == (50, 0)
        _until(lambda: len(read_log(folder, since=began)) == 50)
    finally:
        stop_promoted(service)
    rows = read_log(folder, since=began)
    assert {(r.model, r.version) for r in rows} == {("penguins", "v1")}
    assert rows[0].record["island"] == "Biscoe" and rows[0].prediction["label"] == "Gentoo"
    assert all(r.latency_ms > 0 for r in rows)
    assert [r.ts for r in rows] == sorted(r.ts for r in rows)


def test_a_full_or_unwritable_log_fails_no_prediction(kit_home: Path, small_disk: Path) -> None:
    log = small_disk / "log"
    service = promote(kit_home, KIT_PREDICTION_LOG=str(log))
    try:
        _until(lambda: _stats(service.url)["written"] > 0)  # kit promote's parity check
        written = _stats(service.url)["written"]
        assert _predict(service.url, 10) == (10, 0)
        _until(lambda: _stats(service.url)["written"] == written + 10)
        filler = small_disk / "filler"
        with filler.open("wb") as handle:  # the disk full to the last byte
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        answered, failed = _predict(service.url, 200)
        _until(lambda: _stats(service.url)["failed_write"] > 0)
        filler.unlink()  # space again: the log writes the next batches
        after = _predict(service.url, 20)
        _until(lambda: _stats(service.url)["written"] >= written + 30)
        stats = _stats(service.url)
    finally:
        stop_promoted(service)
    write_figures(
        "prediction_log_full_disk",
        {
            "predictions_while_full": answered + failed,
            "failed": failed,
            "log_failed_writes": stats["failed_write"],
            "logged_after_space_freed": after[0],
        },
    )
    assert (answered, failed) == (200, 0) and after == (20, 0)
    assert stats["failed_write"] > 0 and stats["dropped_queue_full"] == 0
    assert "prediction log: cannot write to" in Path(service_log(kit_home)).read_text()


def test_a_log_folder_that_cannot_exist_fails_no_prediction(kit_home: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    service = promote(kit_home, KIT_PREDICTION_LOG=str(blocked / "log"))
    try:
        _until(lambda: _stats(service.url)["failed_write"] > 0)  # kit promote's parity check
        failed = _stats(service.url)["failed_write"]
        assert _predict(service.url, 50) == (50, 0)
        _until(lambda: _stats(service.url)["failed_write"] == failed + 50)
        assert _stats(service.url)["written"] == 0
    finally:
        stop_promoted(service)


def service_log(home: Path) -> str:
    logs = sorted((home / "logs").glob("service-*.log"))
    assert logs, "kit promote writes the service's log under <home>/logs"
    return str(logs[-1])
