"""Issue 10's measurement: a model imported with a SMALL sample, then `kit batch` on the whole
data set. Before, the sample's range was a rule and real rows were refused; now every valid
row is predicted, the unusual ones with a warning, and only really invalid rows are rejected.

Real `kit` subprocesses with a temporary KIT_HOME, on scikit-learn's bundled data (no download).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from model.artifact import ModelStore
from model.predictor import LocalPredictor
from model.schema import ModelSchema
from tests.helpers import run_kit

WRONG_TYPE = "heavy"  # in a number column: the one row that must be rejected


def _query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def _import_and_batch(
    tmp_path: Path,
    estimator: Any,
    data: pd.DataFrame,
    target: str,
    sample: pd.DataFrame,
) -> tuple[ModelSchema, pd.DataFrame, Path, str]:
    """Fit on all `data`, `kit import` with `sample`, `kit batch` all rows plus a bad one."""
    features = data.drop(columns=[target])
    joblib.dump(estimator.fit(features, data[target]), tmp_path / "model.joblib")
    sample.to_csv(tmp_path / "sample.csv", index=False)
    home = tmp_path / "kit"
    run_kit(
        "import",
        str(tmp_path / "model.joblib"),
        "--sample",
        str(tmp_path / "sample.csv"),
        "--target",
        target,
        "--name",
        "trust",
        home=home,
        check=True,
    )
    bad = data.iloc[[0]].astype(object)
    bad.iloc[0, 0] = WRONG_TYPE
    # the target column is kept: a column that is not a feature is ignored
    pd.concat([data, bad], ignore_index=True).to_csv(tmp_path / "all.csv", index=False)
    result = run_kit(
        "batch", str(tmp_path / "all.csv"), "--out", str(tmp_path / "out.db"), home=home, check=True
    )
    schema = LocalPredictor(ModelStore(home).current()).schema
    return schema, features, tmp_path / "out.db", result.stdout + result.stderr


def _check(schema: ModelSchema, features: pd.DataFrame, database: Path, output: str) -> int:
    """Every valid row predicted, the wrong type rejected by name, warnings as the schema's."""
    rows = len(features)
    assert _query(database, "SELECT rows_done, predicted, rejected FROM jobs") == [
        (rows + 1, rows, 1)
    ], "no valid row rejected"
    (warned,) = _query(database, "SELECT warned FROM jobs")[0]
    assert 0 < warned < rows, "a small sample: some real rows are outside its range"
    assert f"{rows:,} predicted ({warned:,} with warnings" in output
    assert ", 1 rejected" in output

    rejects = _query(database, "SELECT row_number, errors FROM rejects")
    assert [r[0] for r in rejects] == [rows]
    errors = json.loads(rejects[0][1])
    first = str(features.columns[0])
    assert [(e["field"], e["received"]) for e in errors] == [(first, WRONG_TYPE)]

    stored = dict(_query(database, "SELECT row_number, warnings FROM predictions"))
    records = [{str(k): v for k, v in r.items()} for r in features.to_dict(orient="records")]
    expected = {i: schema.record_warnings(r) for i, r in enumerate(records)}
    assert {i: json.loads(w) if w else [] for i, w in stored.items()} == expected
    ranges = {f.name: f.expected_range() for f in schema.features}
    pattern = re.compile(r"^(.+) \S+ is outside the range seen in the sample \((.+)\): ")
    for messages in (json.loads(w) for w in stored.values() if w):
        for message in messages:
            match = pattern.match(message)
            assert match and ranges.get(match[1]) == match[2], message
    return int(warned)


@pytest.mark.parametrize(
    "case",
    ["breast_cancer_forest", "diabetes_ridge"],
)
def test_a_model_imported_with_a_small_sample_predicts_every_valid_row(
    tmp_path: Path, case: str
) -> None:
    build: dict[str, Callable[[], tuple[Any, pd.DataFrame, pd.DataFrame]]] = {
        "breast_cancer_forest": _breast_cancer,
        "diabetes_ridge": _diabetes,
    }
    estimator, data, sample = build[case]()
    schema, features, database, output = _import_and_batch(
        tmp_path, estimator, data, "target", sample
    )
    assert schema.feature_names == list(features.columns)
    _check(schema, features, database, output)


def _breast_cancer() -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """569 rows, 30 numbers; a stratified sample of 60 rows."""
    data = datasets.load_breast_cancer(as_frame=True).frame
    sample, _ = train_test_split(data, train_size=60, stratify=data["target"], random_state=0)
    forest = RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=1)
    return forest, data, sample


def _diabetes() -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """442 rows, 10 numbers; a sample of a quarter of them."""
    data = datasets.load_diabetes(as_frame=True).frame
    return Ridge(alpha=1.0), data, data.sample(frac=0.25, random_state=0)
