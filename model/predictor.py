"""The one Predictor protocol, and `LocalPredictor`: the model in-process.

UIs, the CLI and (in production) the BentoML service all talk to a model through this
protocol, so the same UI works with the model in its own process (`LocalPredictor`) or behind
an HTTP API (`app_production.client.RemotePredictor`), and the same contract tests run on both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from model import artifact
from model.errors import InvalidInput
from model.outputs import finite_output, non_finite_errors
from model.schema import ModelSchema, Record


class Prediction(BaseModel):
    """One answer of the model, in the contract's JSON shape.

    classification: {"label": str, "probabilities": {label: float}, "model_version": str}
    regression:     {"value": float, "model_version": str}

    plus `"warnings": [str, ...]` when the record was unusual for the model (a value outside the
    range seen in the sample, a category it never saw): the prediction is made, and says so.
    Absent when there are none, so clients that do not know warnings keep working.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    label: str | None = None
    probabilities: dict[str, float] | None = None
    value: float | None = None
    model_version: str
    warnings: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def is_finite(self) -> bool:
        """False when the model answered infinity or NaN (an input far beyond what it knows)."""
        return finite_output(self.value, self.probabilities)


class ModelInfo(BaseModel):
    """What a UI shows about the model behind a predictor."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str
    version: str
    model_schema: ModelSchema
    sha256: str = ""
    metrics: dict[str, float] = {}
    backend: str = "local"  # "local", or "remote: <url>"

    @property
    def title(self) -> str:
        return f"{self.name}:{self.version}"


@runtime_checkable
class Predictor(Protocol):
    """Anything that answers predictions for records that match a `ModelSchema`.

    The lifecycle is two calls::

        predictor = LocalPredictor.from_home(settings.home)   # or RemotePredictor(url)
        info = predictor.info()           # name, version, schema: enough to build a UI
        predictions = predictor.predict([{"island": "Dream", "bill_length_mm": 39.1, ...}])
        predictions[0].label, predictions[0].probabilities, predictions[0].model_version

    `predict` validates the records against the schema first and raises
    `model.errors.InvalidInput` (one `FieldError` per bad field) without calling the model;
    a remote implementation raises `model.errors.ServiceUnavailable` when the service is down.
    Predictions come back in the order of the records, each carrying the version that answered.
    """

    def info(self) -> ModelInfo: ...

    def predict(self, records: Sequence[Record]) -> list[Prediction]: ...


def records_to_frame(schema: ModelSchema, records: Sequence[Record]) -> pd.DataFrame:
    """Validated records -> the DataFrame the pipeline was trained on (columns in schema order)."""
    columns: dict[str, Any] = {}
    for feature in schema.features:
        values = [record.get(feature.name) for record in records]  # absent: missing
        if feature.kind in ("number", "integer"):
            columns[feature.name] = np.array(
                [np.nan if v is None else float(v) for v in values], dtype=float
            )
        elif feature.kind == "boolean" and None not in values:
            columns[feature.name] = np.array(values, dtype=bool)
        else:
            columns[feature.name] = pd.array(
                [np.nan if v is None else v for v in values], dtype=object
            )
    return pd.DataFrame(columns, columns=schema.feature_names)


def as_model_input(estimator: Any, frame: pd.DataFrame) -> Any:
    """A DataFrame for estimators fitted on one (they record `feature_names_in_`), else an array."""
    return frame if hasattr(estimator, "feature_names_in_") else frame.to_numpy()


class LocalPredictor:
    """The model loaded in-process from a verified artifact (sha256 checked before unpickling)."""

    def __init__(self, folder: Path) -> None:
        self.estimator, self.manifest = artifact.load(folder)
        self.folder = folder
        self.schema = self.manifest.schema_

    @classmethod
    def from_home(cls, home: Path) -> LocalPredictor:
        """The current model of a kit home folder."""
        return cls(artifact.ModelStore(home).current())

    def info(self) -> ModelInfo:
        m = self.manifest
        return ModelInfo(
            name=m.name,
            version=m.version,
            model_schema=self.schema,
            sha256=m.sha256,
            metrics=m.metrics,
            backend="local",
        )

    def predict(self, records: Sequence[Record]) -> list[Prediction]:
        clean = self.schema.validate_records(records)
        predictions = self.predict_valid(clean)
        unusable = [i for i, p in enumerate(predictions) if not p.is_finite()]
        if unusable:
            raise InvalidInput(non_finite_errors(self.schema, [(i, clean[i]) for i in unusable]))
        return predictions

    def predict_valid(self, records: Sequence[Record]) -> list[Prediction]:
        """Predict records that passed validation, each with its warnings (the service's path)."""
        if not records:
            return []
        predictions = self.predict_frame(records_to_frame(self.schema, records))
        for prediction, record in zip(predictions, records, strict=True):
            prediction.warnings = self.schema.record_warnings(record) or None
        return predictions

    def predict_frame(self, frame: pd.DataFrame) -> list[Prediction]:
        """Predict already-validated rows (used by batch paths that validate in bulk)."""
        version = self.manifest.version
        table = self.predict_table(frame)
        if table.values is not None:
            return [Prediction(value=v, model_version=version) for v in table.values]
        return [
            Prediction(
                label=label,
                probabilities=dict(zip(table.classes, row, strict=True)),
                model_version=version,
            )
            for label, row in zip(table.labels, table.probabilities, strict=True)
        ]

    def predict_table(self, frame: pd.DataFrame) -> PredictionTable:
        """Predictions as plain columns, for callers that write many rows (`kit batch`)."""
        # Far beyond the sample a model may overflow: the answer says so (not finite), and
        # callers refuse it with a field error; numpy's own warning would only be noise.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._predict_table(frame)

    def _predict_table(self, frame: pd.DataFrame) -> PredictionTable:
        frame = as_model_input(self.estimator, frame)
        if self.schema.task == "regression":
            return PredictionTable(values=[float(v) for v in self.estimator.predict(frame)])
        classes = [str(c) for c in self.estimator.classes_]
        if hasattr(self.estimator, "predict_proba"):
            probabilities = np.asarray(self.estimator.predict_proba(frame), dtype=float)
        else:  # no probabilities (e.g. SVC without probability=True): certainty of the label
            predicted = [str(v) for v in self.estimator.predict(frame)]
            probabilities = np.array([[float(p == c) for c in classes] for p in predicted])
        labels = [classes[i] for i in np.argmax(probabilities, axis=1)] if len(classes) else []
        return PredictionTable(classes=classes, labels=labels, probabilities=probabilities.tolist())


@dataclass
class PredictionTable:
    """Classification: `classes`, one label and one probability row per record; regression:
    one value per record."""

    values: list[float] | None = None
    classes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    probabilities: list[list[float]] = field(default_factory=list)


def same_predictions(a: Prediction, b: Prediction, tolerance: float = 1e-9) -> bool:
    """Parity check: identical labels and warnings, probabilities (or values) within
    `tolerance`."""
    if a.label != b.label or (a.value is None) != (b.value is None):
        return False
    if a.value is not None and b.value is not None:
        return math.isclose(a.value, b.value, rel_tol=0, abs_tol=tolerance)
    if (a.warnings or []) != (b.warnings or []):
        return False
    pa, pb = a.probabilities or {}, b.probabilities or {}
    return pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) <= tolerance for k in pa)
