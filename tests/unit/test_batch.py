"""`kit batch`'s core: CSV/Parquet in chunks -> validated -> predicted -> SQLite, resumable."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from model.artifact import ModelStore
from model.batch import run_batch, score_rows
from model.batch_input import Chunk, cell, count_rows, read_chunks
from model.errors import ServiceUnavailable, UsageError
from model.predictor import LocalPredictor, ModelInfo, Prediction
from model.sampling import parity_records
from model.schema import Feature, Record


@pytest.fixture(scope="module")
def local(trained_home: Path) -> LocalPredictor:
    return LocalPredictor(ModelStore(trained_home).current())


REJECTED = (4, 9)  # the rows of `_records` that are invalid
WARNED = (5, 12)  # valid rows of `_records` made unusual on purpose (among others, by chance)


def _records(local: LocalPredictor, copies: int = 3) -> list[Record]:
    records = [dict(r) for r in parity_records(local.schema) * copies]
    records[4]["flipper_length_mm"] = 181.5  # not an integer: rejected
    records[9]["island"] = None  # a required value missing: rejected
    records[5]["bill_length_mm"] = 612.0  # outside the expected range: predicted, warned
    records[12]["island"] = "Atlantis"  # an unknown category the encoder ignores: warned
    return records


def _frame(local: LocalPredictor, copies: int = 3) -> pd.DataFrame:
    frame = pd.DataFrame(_records(local, copies), columns=local.schema.feature_names)
    frame.insert(0, "id", [f"row-{i}" for i in range(len(frame))])
    frame["species"] = "ignored: not a feature"
    return frame


def _declared(local: LocalPredictor) -> LocalPredictor:
    """The same model with rules the user declared: hard limits, and islands that are hard."""
    features = [
        f.model_copy(update={"minimum": 30.0, "maximum": 100.0})
        if f.name == "bill_length_mm"
        else f.model_copy(update={"allow_unknown": False})
        if f.name == "island"
        else f
        for f in local.schema.features
    ]
    declared = copy.copy(local)
    declared.schema = local.schema.model_copy(update={"features": features})
    return declared


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
    valid = frame.drop(index=list(REJECTED))
    records = _records(local)
    expected = local.predict([records[i] for i in valid.index])
    assert [r[1] for r in rows] == list(valid.index)
    assert [r[2] for r in rows] == list(valid["id"])
    for row, prediction in zip(rows, expected, strict=True):
        assert row[3] == prediction.label
        assert json.loads(row[4]) == pytest.approx(prediction.probabilities, abs=1e-12)
        assert (row[6], row[7]) == (local.manifest.name, local.manifest.version)
        assert (json.loads(row[9]) if row[9] is not None else None) == prediction.warnings
    warned = {r[1]: json.loads(r[9]) for r in rows if r[9] is not None}
    assert result.warned == len(warned) == sum(p.warnings is not None for p in expected)
    assert warned[5] == [
        "bill_length_mm 612 is outside the range seen in the sample (29–63): the model is "
        "extrapolating"
    ]
    assert "island 'Atlantis' is not a category the model was trained on" in warned[12][0]
    jobs = _rows(tmp_path / "out.db", "SELECT predicted, warned, rejected FROM jobs")
    assert jobs == [(result.predicted, result.warned, result.rejected)]

    rejects = _rows(tmp_path / "out.db", "SELECT row_number, key, errors FROM rejects")
    assert [(r[0], r[1]) for r in rejects] == [(4, "row-4"), (9, "row-9")]
    errors = {r[0]: json.loads(r[2]) for r in rejects}
    assert errors[4][0]["field"] == "flipper_length_mm" and errors[4][0]["received"] == 181.5
    assert errors[9][0]["field"] == "island" and "(required)" in errors[9][0]["message"]


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
    sql = "SELECT row_number, label, probabilities, warnings FROM predictions ORDER BY row_number"
    assert _rows(tmp_path / "out.db", sql) == _rows(tmp_path / "clean.db", sql)
    sql = "SELECT row_number, errors FROM rejects ORDER BY row_number"
    assert _rows(tmp_path / "out.db", sql) == _rows(tmp_path / "clean.db", sql)
    assert (again.predicted, again.rejected) == (clean.predicted, clean.rejected)
    assert again.warned == clean.warned > 0

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


@pytest.mark.parametrize("rules", ["inferred", "declared"])
def test_the_column_fast_path_accepts_and_predicts_exactly_what_the_row_path_does(
    tmp_path: Path, local: LocalPredictor, rules: str
) -> None:
    """Odd cells of every kind: the fast path may only skip work, never change an answer or
    a warning. `declared`: hard limits and hard categories as well as the expected ranges."""
    import random

    if rules == "declared":
        local = _declared(local)

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
    assert fast.warned == exact.warned > 20
    sql = "SELECT row_number, warnings FROM predictions ORDER BY row_number"
    assert _rows(tmp_path / "fast.db", sql) == _rows(tmp_path / "exact.db", sql)
    sql = "SELECT row_number, label FROM predictions ORDER BY row_number"
    assert _rows(tmp_path / "fast.db", sql) == _rows(tmp_path / "exact.db", sql)
    sql = "SELECT row_number, probabilities FROM predictions ORDER BY row_number"
    for (ra, a), (rb, b) in zip(
        _rows(tmp_path / "fast.db", sql), _rows(tmp_path / "exact.db", sql), strict=True
    ):
        assert ra == rb and json.loads(a) == pytest.approx(json.loads(b), abs=1e-12)
    sql = "SELECT row_number, errors, record FROM rejects ORDER BY row_number"
    assert _rows(tmp_path / "fast.db", sql) == _rows(tmp_path / "exact.db", sql)


def test_null_cells_of_a_text_chunk_are_missing_values_on_both_paths(local: LocalPredictor) -> None:
    """Spark hands CSV cells over as strings, empty ones as None: never a value to clear."""
    base = {k: ("" if v is None else str(v)) for k, v in parity_records(local.schema)[0].items()}
    rows = [{**base, "island": None}, {**base, "sex": None}, {**base, "bill_length_mm": None}]

    def chunk() -> Chunk:
        return Chunk(0, pd.DataFrame(rows), local.schema.features, [None] * 3, text=True)

    fast = score_rows(chunk(), 0, local, local.info())
    exact = score_rows(chunk(), 0, Wrapped(local), local.info())
    assert [r[0] for r in fast[1]] == [r[0] for r in exact[1]] == [0], "island is required"
    assert [(r[0], r[2], r[6]) for r in fast[0]] == [(1, "Adelie", None), (2, "Adelie", None)]
    assert [(r[0], r[2], r[6]) for r in fast[0]] == [(r[0], r[2], r[6]) for r in exact[0]]


def test_declared_limits_are_rules_the_expected_range_is_not(
    tmp_path: Path, local: LocalPredictor
) -> None:
    """Outside a hard limit or a hard category: rejected; outside the expected range only:
    predicted, with a warning. The same by the fast path and the per-row path."""
    declared = _declared(local)
    base = {k: ("" if v is None else v) for k, v in parity_records(local.schema)[0].items()}
    rows = [
        {**base, "bill_length_mm": 45.0},  # usual
        {**base, "bill_length_mm": 612.0},  # beyond the hard maximum 100
        {**base, "bill_length_mm": 70.0},  # within the hard limits, beyond the expected 63
        {**base, "island": "Atlantis"},  # not a declared choice
    ]
    path = tmp_path / "in.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    for name, predictor in (("fast", declared), ("exact", Wrapped(declared))):
        result = run_batch(path, tmp_path / f"{name}.db", predictor)
        assert (result.predicted, result.warned, result.rejected) == (2, 1, 2)
        rejects = _rows(tmp_path / f"{name}.db", "SELECT row_number, errors FROM rejects")
        fields = [(r, [e["field"] for e in json.loads(errors)]) for r, errors in rejects]
        assert fields == [(1, ["bill_length_mm"]), (3, ["island"])]
        assert "between 30 and 100" in json.loads(rejects[0][1])[0]["message"]
        warned = _rows(tmp_path / f"{name}.db", "SELECT row_number, warnings FROM predictions")
        assert [(r, json.loads(w)) for r, w in warned if w] == [
            (2, [declared.schema.feature("bill_length_mm").warning(70.0)])
        ]


# `kit batch`'s tables before predictions had warnings (starter kit 0.x): still usable
OLD_SCHEMA_SQL = """
CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY,
    input TEXT NOT NULL, fingerprint TEXT NOT NULL,
    model_name TEXT NOT NULL, model_version TEXT NOT NULL,
    rows_done INTEGER NOT NULL DEFAULT 0, predicted INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0, started_at TEXT NOT NULL, finished_at TEXT,
    UNIQUE (input, fingerprint, model_name, model_version)
);
CREATE TABLE predictions (
    job_id INTEGER NOT NULL REFERENCES jobs, row_number INTEGER NOT NULL, key TEXT,
    label TEXT, probabilities TEXT, value REAL,
    model_name TEXT NOT NULL, model_version TEXT NOT NULL, predicted_at TEXT NOT NULL,
    PRIMARY KEY (job_id, row_number)
);
CREATE TABLE rejects (
    job_id INTEGER NOT NULL REFERENCES jobs, row_number INTEGER NOT NULL, key TEXT,
    errors TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (job_id, row_number)
);
"""


def test_a_database_of_the_previous_version_gets_the_new_columns_and_keeps_its_rows(
    tmp_path: Path, local: LocalPredictor
) -> None:
    database = tmp_path / "old.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(OLD_SCHEMA_SQL)
        connection.execute(
            "INSERT INTO jobs VALUES (1, 'old.csv', '1:1', 'penguins', 'v0', 1, 1, 0, 't', 't')"
        )
        connection.execute(
            "INSERT INTO predictions VALUES (1, 0, NULL, 'Adelie', '{}', NULL, 'penguins', "
            "'v0', 't')"
        )
    connection.close()
    path = tmp_path / "in.csv"
    _frame(local).to_csv(path, index=False)
    result = run_batch(path, database, local)
    fresh = run_batch(path, tmp_path / "new.db", local)
    assert (result.predicted, result.warned, result.rejected) == (
        fresh.predicted,
        fresh.warned,
        fresh.rejected,
    )
    assert result.warned > 0 and result.job_id == 2
    assert _rows(database, "SELECT job_id, predicted, warned FROM jobs WHERE job_id=1") == [
        (1, 1, 0)
    ]
    old = _rows(database, "SELECT label, warnings FROM predictions WHERE job_id=1")
    assert old == [("Adelie", None)]
    sql = "SELECT row_number, label, warnings FROM predictions WHERE job_id={} ORDER BY 1"
    assert _rows(database, sql.format(2)) == _rows(tmp_path / "new.db", sql.format(1))
    columns = "SELECT name FROM pragma_table_info('{}')"
    for table in ("jobs", "predictions"):
        assert _rows(database, columns.format(table)) == _rows(
            tmp_path / "new.db", columns.format(table)
        ), "an upgraded database has the layout of a new one"


def test_a_batch_that_fails_before_scoring_leaves_no_database(
    tmp_path: Path, local: LocalPredictor
) -> None:
    database = tmp_path / "predictions.db"
    _frame(local).drop(columns=["island"]).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(UsageError, match="'island'"):
        run_batch(tmp_path / "in.csv", database, local)
    assert not database.exists(), "the columns are checked before the database is made"

    class Down:  # the promoted service went away before the first chunk was scored
        def info(self) -> ModelInfo:
            return local.info()

        def predict(self, records: Sequence[Record]) -> list[Prediction]:
            raise ServiceUnavailable("model service at http://127.0.0.1:9 cannot be reached")

    _frame(local).to_csv(tmp_path / "ok.csv", index=False)
    with pytest.raises(ServiceUnavailable):
        run_batch(tmp_path / "ok.csv", database, Down())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "ok.csv"]

    run_batch(tmp_path / "ok.csv", database, local)  # a database that holds work is kept
    _frame(local, copies=2).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(ServiceUnavailable):
        run_batch(tmp_path / "other.csv", database, Down())
    assert database.exists()
