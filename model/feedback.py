"""Testers' feedback: "Wrong? Tell us" next to a prediction, kept with the model.

One row per answer a tester corrected: the record, the prediction it got (label and
probabilities, or value), the correct answer, a comment, the model name and version that
answered, the time, and the tester's user name when the demo is shared with credentials. The
rows live in SQLite (`<home>/feedback.sqlite`, or the service's `KIT_FEEDBACK_DB`): from the
prototype the UI writes them itself (`FeedbackStore`); from a UI that calls the model service
they go through its `POST /feedback` (`app_production.client.RemoteFeedback`), so feedback
collected by a deployed UI lands next to the model, not on a UI pod's disk. Both implement
`FeedbackSink`, which is all a UI knows.

`kit feedback` summarises the rows per version; `kit feedback export` writes them as the
model's input columns plus the correct target, ready to retrain with.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from model.errors import FieldError, InvalidInput
from model.schema import ModelSchema

MAX_COMMENT = 2000  # characters
MAX_USER = 128
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    record TEXT NOT NULL,
    prediction TEXT NOT NULL,
    correct TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    user TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS feedback_model ON feedback (model, version);
"""


@dataclass
class Feedback:
    """One tester's correction of one prediction (checked by `check_feedback`)."""

    model: str  # "penguins"
    version: str  # the version that answered: the prediction's model_version
    record: dict[str, Any]
    prediction: dict[str, Any]  # the Prediction's JSON, as the tester saw it
    correct: str | float  # the right class, or the right value
    comment: str = ""
    user: str = ""  # the tester's user name, when the demo asked for one
    source: str = ""  # "gradio", "streamlit", "api"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def predicted(self) -> str | float | None:
        value = self.prediction.get("label", self.prediction.get("value"))
        return value if isinstance(value, str | int | float) else None

    @property
    def wrong(self) -> bool:
        """The correct answer differs from the prediction (a tester may also confirm one)."""
        predicted = self.predicted
        if isinstance(self.correct, str) or isinstance(predicted, str):
            return str(predicted) != str(self.correct)
        return predicted is None or not math.isclose(float(predicted), float(self.correct))

    def payload(self) -> dict[str, Any]:
        """The body of `POST /feedback` (the service sets the model and the time itself)."""
        return {
            "record": self.record,
            "prediction": self.prediction,
            "correct": self.correct,
            "comment": self.comment,
            "user": self.user,
            "source": self.source,
        }


class FeedbackSink(Protocol):
    """Where a UI sends a tester's feedback; returns the row's id."""

    def save(self, feedback: Feedback) -> int: ...


def check_feedback(schema: ModelSchema, model: str, payload: Any) -> Feedback:
    """A Feedback from a request's body or a UI's values; every bad field named at once.

    The record must be one the model takes (the schema's own validation); the correct answer
    one of the model's classes, or a finite number for a regressor; the prediction the JSON of
    a prediction (it names the version that answered)."""
    if not isinstance(payload, Mapping):
        raise InvalidInput([FieldError(0, "(body)", "a JSON object", payload)])
    errors: list[FieldError] = []
    record = payload.get("record")
    if record is None:
        errors.append(FieldError(0, "record", "the record that was predicted", None, True))
    else:
        errors += schema.validate_record(record)
    prediction = payload.get("prediction")
    version = prediction.get("model_version") if isinstance(prediction, Mapping) else None
    if not isinstance(version, str) or not version:
        expected = "the prediction's JSON, with its model_version"
        errors.append(FieldError(0, "prediction", expected, prediction, prediction is None))
    correct = _correct(schema, payload.get("correct"), errors)
    texts = {name: payload.get(name) for name in ("comment", "user", "source")}
    for name, longest in (("comment", MAX_COMMENT), ("user", MAX_USER), ("source", MAX_USER)):
        text = texts[name]
        if text is not None and (not isinstance(text, str) or len(text) > longest):
            errors.append(FieldError(0, name, f"text of at most {longest} characters", text))
    comment, user = texts["comment"] or "", texts["user"] or ""
    if errors:
        raise InvalidInput(errors)
    assert isinstance(prediction, Mapping) and isinstance(version, str) and correct is not None
    return Feedback(
        model=model,
        version=version,
        record=schema.complete(dict(record)),  # type: ignore[arg-type]
        prediction=dict(prediction),
        correct=correct,
        comment=str(comment).strip(),
        user=str(user),
        source=str(texts["source"] or ""),
    )


def _correct(schema: ModelSchema, value: Any, errors: list[FieldError]) -> str | float | None:
    if schema.task == "classification":
        classes = [str(c) for c in schema.classes or []]
        if value is None or (classes and str(value) not in classes):
            expected = f"one of the model's classes: {', '.join(classes)}"
            errors.append(FieldError(0, "correct", expected, value, value is None))
            return None
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        expected = "the correct value, a finite number"
        errors.append(FieldError(0, "correct", expected, value, value is None))
        return None
    return float(value)


class FeedbackStore:
    """The feedback table in one SQLite file (made on first use, owner-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # one UI process serves several testers at once

    def _connect(self) -> sqlite3.Connection:
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10)
        if new:
            self.path.chmod(0o600)
        connection.execute("PRAGMA journal_mode=WAL")  # the UI and the service may both write
        connection.executescript(SCHEMA_SQL)
        return connection

    def save(self, feedback: Feedback) -> int:
        row = asdict(feedback)
        for key in ("record", "prediction", "correct"):
            row[key] = json.dumps(row[key])
        columns = list(row)
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO feedback ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - ours
        with self._lock:
            connection = self._connect()
            try:
                with connection:
                    cursor = connection.execute(sql, [row[c] for c in columns])
                return int(cursor.lastrowid or 0)
            finally:
                connection.close()

    def rows(self, model: str | None = None, version: str | None = None) -> list[Feedback]:
        """Every row (of one model, of one version), oldest first."""
        if not self.path.exists():
            return []
        where, args = [], []
        for column, value in (("model", model), ("version", version)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT created_at, model, version, record, prediction, correct, comment, user, "
        sql += "source FROM feedback" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._lock:
            connection = self._connect()
            try:
                found = connection.execute(sql + " ORDER BY id", args).fetchall()
            finally:
                connection.close()
        return [
            Feedback(
                created_at=created,
                model=name,
                version=ver,
                record=json.loads(record),
                prediction=json.loads(prediction),
                correct=json.loads(correct),
                comment=comment,
                user=user,
                source=source,
            )
            for created, name, ver, record, prediction, correct, comment, user, source in found
        ]


@dataclass
class VersionSummary:
    """`kit feedback`'s view of one version."""

    model: str
    version: str
    count: int
    wrong: int
    confusion: dict[str, dict[str, int]] | None  # predicted -> correct -> count (classifiers)
    mean_abs_error: float | None  # |predicted - correct| (regressors)

    @property
    def wrong_share(self) -> float:
        return self.wrong / self.count if self.count else 0.0


def summarise(rows: list[Feedback]) -> list[VersionSummary]:
    """Per model version, in order of first feedback: count, share wrong, confusion or error."""
    groups: dict[tuple[str, str], list[Feedback]] = {}
    for row in rows:
        groups.setdefault((row.model, row.version), []).append(row)
    summaries = []
    for (model, version), group in groups.items():
        labels = [r for r in group if isinstance(r.correct, str)]
        confusion: dict[str, dict[str, int]] | None = None
        error: float | None = None
        if labels:
            pairs = Counter((str(r.predicted), str(r.correct)) for r in labels)
            confusion = {}
            for (predicted, correct), count in sorted(pairs.items()):
                confusion.setdefault(predicted, {})[correct] = count
        errors = [
            abs(float(r.predicted) - float(r.correct))
            for r in group
            if not isinstance(r.correct, str) and isinstance(r.predicted, int | float)
        ]
        if errors:
            error = sum(errors) / len(errors)
        wrong = sum(r.wrong for r in group)
        summaries.append(VersionSummary(model, version, len(group), wrong, confusion, error))
    return summaries
