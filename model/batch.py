"""Offline predictions: a CSV or Parquet file scored into a SQLite database, resumably.

    kit batch penguins.csv --out predictions.db

Tables (one database can hold many jobs):

    jobs         one row per (input file, its size and mtime, model name, version): rows done,
                 predicted, rejected, warned (predicted with warnings)
    predictions  job_id, row_number (0-based data row), key, label, probabilities (JSON) or
                 value, model_name, model_version, predicted_at, warnings (a JSON list of
                 messages, e.g. a value outside the range seen in the sample; NULL when none)
    rejects      job_id, row_number, key, errors (JSON: the schema's field errors), record

Each chunk is one transaction: its predictions, its rejects and the job's progress are written
together or not at all. Interrupted (Ctrl-C, kill) and run again, a job continues after the
last committed chunk: no row is lost or written twice (the primary keys would refuse it).
A database made by an earlier version gets the newer columns (`ADDED_COLUMNS`) when opened.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from model.batch_input import (
    Chunk,
    Cleared,
    check_columns,
    check_input,
    cleared,
    count_rows,
    input_columns,
    read_chunks,
)
from model.predictor import (
    LocalPredictor,
    ModelInfo,
    Predictor,
    records_to_frame,
)
from model.schema import Record

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY,
    input TEXT NOT NULL, fingerprint TEXT NOT NULL,
    model_name TEXT NOT NULL, model_version TEXT NOT NULL,
    rows_done INTEGER NOT NULL DEFAULT 0, predicted INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0, started_at TEXT NOT NULL, finished_at TEXT,
    warned INTEGER NOT NULL DEFAULT 0,
    UNIQUE (input, fingerprint, model_name, model_version)
);
CREATE TABLE IF NOT EXISTS predictions (
    job_id INTEGER NOT NULL REFERENCES jobs, row_number INTEGER NOT NULL, key TEXT,
    label TEXT, probabilities TEXT, value REAL,
    model_name TEXT NOT NULL, model_version TEXT NOT NULL, predicted_at TEXT NOT NULL,
    warnings TEXT,
    PRIMARY KEY (job_id, row_number)
);
CREATE TABLE IF NOT EXISTS rejects (
    job_id INTEGER NOT NULL REFERENCES jobs, row_number INTEGER NOT NULL, key TEXT,
    errors TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (job_id, row_number)
);
"""
# Columns added since the first version (last in SCHEMA_SQL too, so every database has one
# layout): (table, column, declaration), added to an older database when it is opened.
ADDED_COLUMNS = (
    ("jobs", "warned", "INTEGER NOT NULL DEFAULT 0"),
    ("predictions", "warnings", "TEXT"),
)
PREDICT_SLICE = 1000  # records per predict call (the service's limit per request)


@dataclass
class BatchResult:
    job_id: int
    rows: int  # data rows in the input
    predicted: int
    rejected: int
    warned: int  # predicted, with warnings
    resumed_from: int  # rows already done by an earlier, interrupted run
    seconds: float
    database: Path

    @property
    def rows_per_s(self) -> float:
        done = self.rows - self.resumed_from
        return done / self.seconds if self.seconds else 0.0


Progress = Callable[[int], None]  # rows advanced


def connect(database: Path) -> sqlite3.Connection:
    database.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(database, isolation_level=None)  # transactions by hand
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a kill
    connection.executescript(SCHEMA_SQL)
    add_missing_columns(connection)
    return connection


def add_missing_columns(connection: sqlite3.Connection) -> None:
    """Upgrade a database made by an earlier version in place (its rows are kept)."""
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def open_job(
    connection: sqlite3.Connection, path: Path, name: str, version: str
) -> tuple[int, int]:
    """(job_id, rows already done): the same input and model continue where they stopped."""
    key = (str(path.resolve()), fingerprint(path), name, version)
    row = connection.execute(
        "SELECT job_id, rows_done FROM jobs WHERE input=? AND fingerprint=? AND model_name=? "
        "AND model_version=?",
        key,
    ).fetchone()
    if row is not None:
        return int(row[0]), int(row[1])
    cursor = connection.execute(
        "INSERT INTO jobs (input, fingerprint, model_name, model_version, started_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (*key, _now()),
    )
    return int(cursor.lastrowid or 0), 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# label, probabilities (JSON), value, version, warnings (JSON list or None)
Outcome = tuple[str | None, str | None, float | None, str, str | None]


def warnings_json(messages: Sequence[str] | None) -> str | None:
    """The stored form of a prediction's warnings: a JSON list, None (NULL) when there are none."""
    return orjson.dumps(list(messages)).decode() if messages else None


def _table_outcomes(
    predictor: Predictor, frame: pd.DataFrame, info: ModelInfo, notes: Sequence[str | None]
) -> list[Outcome]:
    """Outcomes of valid rows straight from the pipeline; `notes`: their warnings_json."""
    assert isinstance(predictor, LocalPredictor)
    table = predictor.predict_table(frame)
    version = info.version
    if table.values is not None:
        return [(None, None, v, version, n) for v, n in zip(table.values, notes, strict=True)]
    classes = table.classes
    return [
        (label, orjson.dumps(dict(zip(classes, row, strict=True))).decode(), None, version, n)
        for label, row, n in zip(table.labels, table.probabilities, notes, strict=True)
    ]


def _outcomes(predictor: Predictor, records: Sequence[Record], info: ModelInfo) -> list[Outcome]:
    """The outcome of each validated record, in order."""
    if isinstance(predictor, LocalPredictor):  # validated already: straight to the pipeline
        schema = info.model_schema
        notes = [warnings_json(schema.record_warnings(record)) for record in records]
        return _table_outcomes(predictor, records_to_frame(schema, records), info, notes)
    out: list[Outcome] = []
    for start in range(0, len(records), PREDICT_SLICE):
        for p in predictor.predict(records[start : start + PREDICT_SLICE]):
            probabilities = orjson.dumps(p.probabilities).decode() if p.probabilities else None
            out.append(
                (p.label, probabilities, p.value, p.model_version, warnings_json(p.warnings))
            )
    return out


def _notes_of(rows: np.ndarray, found: dict[int, list[str]]) -> list[str | None]:
    """warnings_json for each of `rows` (sorted row indices): None but where `found` has some."""
    notes: list[str | None] = [None] * len(rows)
    if not found or not len(rows):
        return notes
    flagged = np.fromiter(found, dtype=np.int64, count=len(found))
    at = np.minimum(np.searchsorted(rows, flagged), len(rows) - 1)
    hit = rows[at] == flagged  # a flagged row may be before `skip`, not among `rows`
    for i, position in zip(flagged[hit].tolist(), at[hit].tolist(), strict=True):
        notes[position] = warnings_json(found[i])
    return notes


# row number, key, label, probabilities, value, version, warnings
PredictionRow = tuple[int, str | None, str | None, str | None, float | None, str, str | None]
RejectRow = tuple[int, str | None, str, str]  # row number, key, errors, record


def score_rows(
    chunk: Chunk, skip: int, predictor: Predictor, info: ModelInfo
) -> tuple[list[PredictionRow], list[RejectRow]]:
    """Validate and predict one chunk, from row `skip` on: (predictions, rejects), each row
    starting with its row number; the same for every engine (SQLite here, Spark partitions)."""
    schema = info.model_schema
    fast = Cleared(np.zeros(len(chunk), dtype=bool), {}, {})
    if isinstance(predictor, LocalPredictor):  # the column fast path needs the model here
        fast = cleared(schema, chunk)
    fast.rows[:skip] = False
    fast_rows = np.flatnonzero(fast.rows)
    others = [i for i in np.flatnonzero(~fast.rows).tolist() if i >= skip]
    good: list[tuple[int, Record]] = []
    rejects: list[RejectRow] = []
    for i in others:
        record, row, key = chunk.record(i), chunk.first_row + i, chunk.keys[i]
        errors = schema.validate_record(record, row)
        if errors:
            payload = json.dumps([e.to_json() for e in errors])
            rejects.append((row, key, payload, json.dumps(record, default=str)))
        else:
            good.append((i, record))
    answered: list[tuple[int, Outcome]] = []
    if good:
        outcomes = _outcomes(predictor, [record for _, record in good], info)
        answered += zip((i for i, _ in good), outcomes, strict=True)
    if len(fast_rows):
        frame = pd.DataFrame(
            {name: values[fast_rows] for name, values in fast.columns.items()},
            columns=schema.feature_names,
        )
        notes = _notes_of(fast_rows, fast.warnings)
        outcomes = _table_outcomes(predictor, frame, info, notes)
        answered += zip(fast_rows.tolist(), outcomes, strict=True)
    answered.sort(key=lambda pair: pair[0])
    first, keys = chunk.first_row, chunk.keys
    predictions = [(first + i, keys[i], *outcome) for i, outcome in answered]
    return predictions, rejects


INSERT_PREDICTION = (
    "INSERT INTO predictions (job_id, row_number, key, label, probabilities, value, "
    "model_version, warnings, model_name, predicted_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
INSERT_REJECT = "INSERT INTO rejects (job_id, row_number, key, errors, record) VALUES (?,?,?,?,?)"


def score_chunk(
    connection: sqlite3.Connection,
    job_id: int,
    chunk: Chunk,
    skip: int,
    predictor: Predictor,
    info: ModelInfo,
) -> tuple[int, int, int]:
    """Validate, predict and write one chunk in one transaction; (predicted, warned, rejected)."""
    predictions, rejected = score_rows(chunk, skip, predictor, info)
    at, name = _now(), info.name
    rows = [(job_id, *prediction, name, at) for prediction in predictions]
    rejects = [(job_id, *reject) for reject in rejected]
    warned = sum(prediction[-1] is not None for prediction in predictions)
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(INSERT_PREDICTION, rows)
        connection.executemany(INSERT_REJECT, rejects)
        connection.execute(
            "UPDATE jobs SET rows_done=?, predicted=predicted+?, warned=warned+?, "
            "rejected=rejected+? WHERE job_id=?",
            (chunk.first_row + len(chunk), len(rows), warned, len(rejects), job_id),
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(rows), warned, len(rejects)


def run_batch(
    path: Path,
    database: Path,
    predictor: Predictor,
    *,
    chunk_size: int = 10_000,
    key: str | None = None,
    progress: Callable[[int, int], Progress] | None = None,
) -> BatchResult:
    """Score `path` into `database`; `progress(total, done)` returns a callback per chunk."""
    check_input(path)  # before the database is created
    info = predictor.info()
    check_columns(info.model_schema, input_columns(path), key, path)  # that too
    created = not database.exists()
    connection = connect(database)
    began = time.perf_counter()
    committed = False
    try:
        job_id, done = open_job(connection, path, info.name, info.version)
        total = count_rows(path)
        advance = progress(total, done) if progress else None
        for chunk in read_chunks(path, info.model_schema, chunk_size, key):
            end = chunk.first_row + len(chunk)
            if end <= done:
                continue  # committed by an earlier run
            skip = max(0, done - chunk.first_row)
            score_chunk(connection, job_id, chunk, skip, predictor, info)
            committed = True
            if advance:
                advance(len(chunk) - skip)
        connection.execute("UPDATE jobs SET finished_at=? WHERE job_id=?", (_now(), job_id))
        predicted, rejected, warned, rows_done = connection.execute(
            "SELECT predicted, rejected, warned, rows_done FROM jobs WHERE job_id=?", (job_id,)
        ).fetchone()
    except BaseException:
        connection.close()
        if created and not committed:  # failed before scoring anything: leave nothing behind
            for leftover in (database, *(Path(f"{database}{end}") for end in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)
        raise
    connection.close()
    return BatchResult(
        job_id,
        int(rows_done),
        int(predicted),
        int(rejected),
        int(warned),
        done,
        time.perf_counter() - began,
        database,
    )
