"""`kit batch` as users run it: a real file, a real SQLite database, a real kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from model.artifact import ModelStore
from model.predictor import LocalPredictor
from model.sampling import parity_records
from tests.helpers import KIT, ROOT, Promoted, kit_env, run_kit, write_figures

ROWS = 60_000
BAD: dict[int, tuple[str, Any]] = {
    17: ("flipper_length_mm", 181.5),
    30_011: ("bill_length_mm", "heavy"),
    59_999: ("island", ""),
}
# valid but unusual: predicted with a warning (the parity records have more, by design)
ODD: dict[int, tuple[str, Any]] = {18: ("bill_length_mm", 612.0), 30_012: ("island", "Atlantis")}


def _input(home: Path, path: Path, rows: int = ROWS) -> pd.DataFrame:
    schema = LocalPredictor(ModelStore(home).current()).schema
    base = parity_records(schema)
    frame = pd.DataFrame([base[i % len(base)] for i in range(rows)], columns=schema.feature_names)
    frame.insert(0, "id", [f"p{i}" for i in range(rows)])
    for row, (column, value) in {**BAD, **ODD}.items():
        if row < rows:
            frame[column] = frame[column].astype(object)
            frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    return frame


def _rows_done(database: Path) -> int:
    """Rows the job has committed so far: 0 until its database, its tables and its job row all
    exist (the file appears before the tables do: wait for the condition, not the file)."""
    try:
        rows = _query(database, "SELECT rows_done FROM jobs") if database.exists() else []
    except sqlite3.OperationalError:  # no such table (yet), or locked while it is created
        return 0
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def _query(database: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


PREDICTIONS = (
    "SELECT row_number, key, label, probabilities, warnings FROM predictions ORDER BY row_number"
)
REJECTS = "SELECT row_number, key, errors FROM rejects ORDER BY row_number"


def _summary(rows: int, database: Path) -> str:
    """The line `kit batch` prints, from the counts of the job in `database`."""
    predicted, warned, rejected = _query(database, "SELECT predicted, warned, rejected FROM jobs")[
        0
    ]
    assert isinstance(warned, int) and warned > 0, "the parity records have unusual values"
    return (
        f"{rows:,} rows: {predicted:,} predicted ({warned:,} with warnings: values outside the "
        f"range seen in the sample or unseen categories), {rejected:,} rejected"
    )


@pytest.mark.reliability
def test_a_killed_job_resumes_without_losing_or_repeating_rows(
    trained_home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "penguins.csv"
    _input(trained_home, source)
    killed_db = tmp_path / "killed.db"
    command = [
        *KIT,
        "batch",
        str(source),
        "--out",
        str(killed_db),
        "--key",
        "id",
        "--chunk-size",
        "2000",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=kit_env(trained_home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        done = 0
        while done < 6000 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            done = _rows_done(killed_db)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # mid-job, mid-chunk: no chance to clean up
        process.wait()
    assert 6000 <= done < ROWS, f"the job was not caught in the middle ({done} rows done)"

    resumed = run_kit(*command[len(KIT) :], home=trained_home, check=True)
    assert "continued after row" in resumed.stderr + resumed.stdout
    clean_db = tmp_path / "clean.db"
    run_kit(
        "batch", str(source), "--out", str(clean_db), "--key", "id", home=trained_home, check=True
    )
    assert _query(killed_db, PREDICTIONS) == _query(clean_db, PREDICTIONS)
    assert _query(killed_db, REJECTS) == _query(clean_db, REJECTS)
    assert [r[0] for r in _query(killed_db, REJECTS)] == sorted(BAD)
    count = _query(killed_db, "SELECT count(*), count(DISTINCT row_number) FROM predictions")
    (stored, distinct), expected = count[0], ROWS - len(BAD)
    write_figures(
        "batch_resumed",
        {
            "rows": ROWS,
            "killed_after_rows": done,
            "lost": expected - distinct,
            "repeated": stored - distinct,
        },
    )
    assert count == [(ROWS - len(BAD), ROWS - len(BAD))]
    warned = _query(
        killed_db, "SELECT row_number, warnings FROM predictions WHERE row_number IN (18, 30012)"
    )
    assert [(r, json.loads(str(w))[0].split(" ")[0]) for r, w in warned] == [
        (18, "bill_length_mm"),
        (30_012, "island"),
    ]
    assert "warned rows and why: sqlite3" in resumed.stdout + resumed.stderr


def test_remote_backend_writes_the_same_predictions_as_local(
    promoted: Promoted, tmp_path: Path
) -> None:
    source = tmp_path / "penguins.csv"
    _input(promoted.home, source, rows=2500)
    outputs = []
    for backend in ("local", "remote"):
        result = run_kit(
            "batch",
            str(source),
            "--out",
            str(tmp_path / f"{backend}.db"),
            "--backend",
            backend,
            "--key",
            "id",
            home=promoted.home,
            check=True,
        )
        outputs.append(result.stdout + result.stderr)
    for output, backend in zip(outputs, ("local", "remote"), strict=True):
        assert _summary(2500, tmp_path / f"{backend}.db") in output
    assert _summary(2500, tmp_path / "local.db") == _summary(2500, tmp_path / "remote.db")
    assert "2,499 predicted (" in outputs[0] and ", 1 rejected" in outputs[0]
    sql = "SELECT row_number, label, warnings FROM predictions ORDER BY row_number"
    local = _query(tmp_path / "local.db", sql)
    remote = _query(tmp_path / "remote.db", sql)
    assert local == remote, "the service's warnings are stored as the local ones"
    local_p = _query(tmp_path / "local.db", "SELECT probabilities FROM predictions")
    remote_p = _query(tmp_path / "remote.db", "SELECT probabilities FROM predictions")
    for a, b in zip(local_p, remote_p, strict=True):
        assert json.loads(str(b[0])) == pytest.approx(json.loads(str(a[0])), abs=1e-9)


def test_bad_usage_exits_2_with_a_clear_message(trained_home: Path, tmp_path: Path) -> None:
    missing = run_kit("batch", str(tmp_path / "nothing.csv"), home=trained_home)
    assert missing.returncode == 2
    assert "does not exist" in missing.stdout + missing.stderr


def test_the_spark_engine_writes_the_same_predictions_and_rejects(
    trained_home: Path, tmp_path: Path
) -> None:
    """Apache Spark in local mode (pyspark, Java 17): identical to the local engine."""
    import pyarrow.parquet as pq

    source = tmp_path / "penguins.csv"
    _input(trained_home, source, rows=3000)
    run_kit(
        "batch",
        str(source),
        "--out",
        str(tmp_path / "local.db"),
        "--key",
        "id",
        home=trained_home,
        check=True,
    )
    spark = run_kit(
        "batch",
        str(source),
        "--engine",
        "spark",
        "--out",
        str(tmp_path / "out.parquet"),
        "--key",
        "id",
        home=trained_home,
        check=True,
        timeout=300,
    )
    assert _summary(3000, tmp_path / "local.db") in spark.stdout + spark.stderr
    assert "2,999 predicted (" in spark.stdout + spark.stderr
    table = pq.read_table(tmp_path / "out.parquet").to_pandas().sort_values("row_number")
    predicted = table[table["errors"].isna()]
    local = _query(tmp_path / "local.db", PREDICTIONS)
    assert [(r[0], r[1], r[2], r[4]) for r in local] == list(
        zip(
            predicted["row_number"],
            predicted["key"],
            predicted["label"],
            [None if pd.isna(w) else w for w in predicted["warnings"]],
            strict=True,
        )
    )
    assert predicted["warnings"].notna().sum() > 0
    for row, probabilities in zip(local, predicted["probabilities"], strict=True):
        assert json.loads(probabilities) == pytest.approx(json.loads(str(row[3])), abs=1e-12)
    rejected = table[table["errors"].notna()]
    assert [(r[0], r[1], r[2]) for r in _query(tmp_path / "local.db", REJECTS)] == list(
        zip(rejected["row_number"], rejected["key"], rejected["errors"], strict=True)
    )
