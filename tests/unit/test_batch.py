"""`kit batch`'s core: CSV/Parquet in chunks -> validated -> predicted -> SQLite, resumable."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from model.artifact import ModelStore
from model.batch import run_batch
from model.batch_input import cell, count_rows, read_chunks
from model.errors import UsageError
from model.predictor import LocalPredictor, ModelInfo, Prediction
from model.sampling import parity_records
from model.schema import Feature, Record


@pytest.fixture(scope="module")
def local(trained_home: Path) -> LocalPredictor:
    return LocalPredictor(ModelStore(trained_home).current())


def _frame(local: LocalPredictor, copies: int = 3) -> pd.DataFrame:
    records = parity_records(local.schema) * copies
    frame = pd.DataFrame(records, columns=local.schema.feature_names)
    frame.insert(0, "id", [f"row-{i}" for i in range(len(frame))])
    frame["species"] = "ignored: not a feature"
    frame.loc[4, "bill_length_mm"] = 612.0  # out of bounds
    frame.loc[9, "island"] = "Atlantis"  # unknown category
    return frame


def _rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("number", "39.1", 39.1),
        ("number", "abc", "abc"),  # kept, so that validation names it
        ("number", "", None),
        ("number", "NA", None),
        ("integer", "181", 181),
        ("integer", "181.0", 181),
        ("integer", "181.5", 181.5),  # validation says it is not an integer
        ("boolean", "True", True),
        ("boolean", "0", False),
        ("boolean", "maybe", "maybe"),
        ("category", "Dream", "Dream"),
        ("number", float("nan"), None),
        ("integer", 181.0, 181),
    ],
)
def test_cells_become_the_values_the_schema_validates(kind: str, raw: Any, expected: Any) -> None:
    feature = Feature(name="x", kind=kind, choices=["Dream"] if kind == "category" else None)
    assert cell(feature, raw) == expected


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_count_rows_counts_data_rows(tmp_path: Path, trailing_newline: bool) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3,4" + ("\n" if trailing_newline else ""))
    assert count_rows(path) == 2


def test_a_missing_required_column_is_named(tmp_path: Path, local: LocalPredictor) -> None:
    frame = _frame(local).drop(columns=["island"])
    frame.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(UsageError, match=r"has no column 'island'.*Rename the columns"):
        next(read_chunks(tmp_path / "in.csv", local.schema, 10))
    (tmp_path / "in.json").write_text("[]")
    with pytest.raises(UsageError, match="must be a CSV or Parquet file"):
        next(read_chunks(tmp_path / "in.json", local.schema, 10))
    with pytest.raises(UsageError, match="does not exist"):
        next(read_chunks(tmp_path / "nowhere.csv", local.schema, 10))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_valid_rows_are_predicted_and_invalid_rows_rejected_with_their_errors(
    tmp_path: Path, local: LocalPredictor, suffix: str
) -> None:
    frame = _frame(local)
    path = tmp_path / f"in{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    result = run_batch(path, tmp_path / "out.db", local, chunk_size=7, key="id")
    assert (result.rows, result.predicted, result.rejected) == (len(frame), len(frame) - 2, 2)

    rows = _rows(tmp_path / "out.db", "SELECT * FROM predictions ORDER BY row_number")
    valid = frame.drop(index=[4, 9])
    records = parity_records(local.schema) * 3
    expected = local.predict([records[i] for i in valid.index])
    assert [r[1] for r in rows] == list(valid.index)
    assert [r[2] for r in rows] == list(valid["id"])
    for row, prediction in zip(rows, expected, strict=True):
        assert row[3] == prediction.label
        assert json.loads(row[4]) == pytest.approx(prediction.probabilities, abs=1e-12)
        assert (row[6], row[7]) == (local.manifest.name, local.manifest.version)

    rejects = _rows(tmp_path / "out.db", "SELECT row_number, key, errors FROM rejects")
    assert [(r[0], r[1]) for r in rejects] == [(4, "row-4"), (9, "row-9")]
    errors = {r[0]: json.loads(r[2]) for r in rejects}
    assert errors[4][0]["field"] == "bill_length_mm" and errors[4][0]["received"] == 612.0
    assert errors[9][0]["message"].startswith("feature 'island' must be one of")


class Interrupted(BaseException):
    """What Ctrl-C is to the job: not an Exception."""


class FailingAfter:
    """A LocalPredictor stand-in (same model) that is interrupted on its n-th call."""

    def __init__(self, local: LocalPredictor, calls: int) -> None:
        self.local, self.calls = local, calls

    def info(self) -> ModelInfo:
        return self.local.info()

    def predict(self, records: Sequence[Record]) -> list[Prediction]:
        self.calls -= 1
        if self.calls == 0:
            raise Interrupted
        return self.local.predict(records)


def test_an_interrupted_job_resumes_without_losing_or_repeating_a_row(
    tmp_path: Path, local: LocalPredictor
) -> None:
    frame = _frame(local, copies=4)
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(Interrupted):
        run_batch(path, tmp_path / "out.db", FailingAfter(local, calls=4), chunk_size=10)
    done = _rows(tmp_path / "out.db", "SELECT rows_done, predicted, rejected FROM jobs")
    assert done[0][0] == 30, "three chunks committed, the fourth rolled back"
    assert _rows(tmp_path / "out.db", "SELECT count(*) FROM predictions")[0][0] == 28

    again = run_batch(path, tmp_path / "out.db", local, chunk_size=10)
    assert again.resumed_from == 30
    clean = run_batch(path, tmp_path / "clean.db", local, chunk_size=10)
    sql = "SELECT row_number, label, probabilities FROM predictions ORDER BY row_number"
    assert _rows(tmp_path / "out.db", sql) == _rows(tmp_path / "clean.db", sql)
    sql = "SELECT row_number, errors FROM rejects ORDER BY row_number"
    assert _rows(tmp_path / "out.db", sql) == _rows(tmp_path / "clean.db", sql)
    assert (again.predicted, again.rejected) == (clean.predicted, clean.rejected)

    third = run_batch(path, tmp_path / "out.db", local, chunk_size=10)  # nothing left to do
    assert third.resumed_from == third.rows and third.job_id == again.job_id


def test_another_model_version_or_a_changed_file_is_a_new_job(
    tmp_path: Path, local: LocalPredictor
) -> None:
    path = tmp_path / "in.csv"
    _frame(local).to_csv(path, index=False)
    first = run_batch(path, tmp_path / "out.db", local)
    _frame(local, copies=2).to_csv(path, index=False)
    second = run_batch(path, tmp_path / "out.db", local)
    assert second.job_id != first.job_id and second.resumed_from == 0


class Wrapped:
    """The same model behind the plain Predictor protocol: every row takes the exact path."""

    def __init__(self, local: LocalPredictor) -> None:
        self.local = local

    def info(self) -> ModelInfo:
        return self.local.info()

    def predict(self, records: Sequence[Record]) -> list[Prediction]:
        return self.local.predict(records)


def test_the_column_fast_path_accepts_and_predicts_exactly_what_the_row_path_does(
    tmp_path: Path, local: LocalPredictor
) -> None:
    """Odd cells of every kind: the fast path may only skip work, never change an answer."""
    import random

    rng = random.Random(7)
    numbers = [
        "39.1",
        "39",
        " 41.5",
        "1e1",
        "612",
        "-3",
        "inf",
        "nan",
        "NA",
        "",
        "abc",
        "1_000",
        "0x1A",
        "4e2",
        "181.0",
        "181.5",
        "2e308",
        "45.00000001",
    ]
    categories = ["Dream", "Biscoe", "dream", " Dream", "NA", "", "Atlantis", "1"]
    base = parity_records(local.schema)
    rows = []
    for i in range(400):
        row = {k: ("" if v is None else str(v)) for k, v in base[i % len(base)].items()}
        for feature in local.schema.features:
            if rng.random() < 0.15:
                pool = numbers if feature.kind in ("number", "integer") else categories
                row[feature.name] = rng.choice(pool)
        rows.append(row)
    path = tmp_path / "odd.csv"
    pd.DataFrame(rows, columns=local.schema.feature_names).to_csv(path, index=False)
    fast = run_batch(path, tmp_path / "fast.db", local, chunk_size=64)
    exact = run_batch(path, tmp_path / "exact.db", Wrapped(local), chunk_size=64)
    assert (fast.predicted, fast.rejected) == (exact.predicted, exact.rejected)
    assert 0 < fast.rejected < 400 and fast.predicted > 100
    sql = "SELECT row_number, label FROM predictions ORDER BY row_number"
    assert _rows(tmp_path / "fast.db", sql) == _rows(tmp_path / "exact.db", sql)
    sql = "SELECT row_number, probabilities FROM predictions ORDER BY row_number"
    for (ra, a), (rb, b) in zip(
        _rows(tmp_path / "fast.db", sql), _rows(tmp_path / "exact.db", sql), strict=True
    ):
        assert ra == rb and json.loads(a) == pytest.approx(json.loads(b), abs=1e-12)
    sql = "SELECT row_number, errors, record FROM rejects ORDER BY row_number"
    assert _rows(tmp_path / "fast.db", sql) == _rows(tmp_path / "exact.db", sql)
