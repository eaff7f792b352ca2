"""`kit import`: register a user's own fitted estimator or Pipeline, with no code written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score

from model.artifact import Manifest, ModelStore, check_name
from model.encoders import mark_unknown_tolerant
from model.errors import ArtifactError
from model.inference import infer_schema, records_from_frame
from model.predictor import as_model_input, records_to_frame
from model.schema import Task

SAMPLE_CHECK_ROWS = 5


@dataclass
class ImportReport:
    manifest: Manifest
    notes: list[str] = field(default_factory=list)


def _task_of(estimator: Any) -> Task:
    if is_classifier(estimator) or hasattr(estimator, "classes_"):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    raise ArtifactError(
        f"{type(estimator).__name__} is neither a classifier nor a regressor: kit import needs a "
        "fitted scikit-learn estimator or Pipeline ending in one"
    )


def _align_with_estimator(estimator: Any, sample: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Order the sample's columns as the estimator expects (`feature_names_in_`), when it says."""
    expected = getattr(estimator, "feature_names_in_", None)
    if expected is None:
        notes.append(
            "the estimator does not record its feature names (fitted on an array): the sample's "
            f"column order is used as is: {list(sample.columns)}"
        )
        return sample
    expected = [str(c) for c in expected]
    missing = [c for c in expected if c not in sample.columns]
    if missing:
        raise ArtifactError(
            f"the sample lacks columns the model was fitted on: {missing}; "
            f"the model expects {expected}"
        )
    extra = [c for c in sample.columns if c not in expected]
    if extra:
        notes.append(f"columns not used by the model were left out of the schema: {extra}")
    return sample[expected]


def import_model(
    store: ModelStore,
    model_path: Path,
    sample_path: Path,
    *,
    target: str | None = None,
    name: str | None = None,
) -> ImportReport:
    """Infer the schema from the sample, check it against the estimator, save an artifact."""
    name = check_name(name or model_path.stem.lower().replace(" ", "-"))
    if not model_path.is_file():
        raise ArtifactError(f"model file {model_path} does not exist")
    try:
        sample = pd.read_csv(sample_path)
    except FileNotFoundError as exc:
        raise ArtifactError(f"sample file {sample_path} does not exist") from exc
    if len(sample) == 0:
        raise ArtifactError(f"sample file {sample_path} has no rows: give a few real records")
    try:
        estimator = joblib.load(model_path)
    except Exception as exc:  # any unpickling failure: say what the file should be
        raise ArtifactError(
            f"could not load {model_path} with joblib ({type(exc).__name__}: {exc}); "
            "save your model with joblib.dump(model, path)"
        ) from exc
    if not hasattr(estimator, "predict"):
        raise ArtifactError(
            f"{model_path} holds a {type(estimator).__name__}, which has no predict()"
        )
    notes: list[str] = []
    y = None
    if target is not None:
        if target not in sample.columns:
            raise ArtifactError(
                f"target column {target!r} is not in the sample; columns are {list(sample.columns)}"
            )
        unlabelled = int(sample[target].isna().sum())
        if unlabelled:
            notes.append(f"{unlabelled} sample row(s) without a {target!r} value were left out")
            sample = sample[sample[target].notna()]
        if len(sample) == 0:
            raise ArtifactError(f"no row of the sample has a value in the target column {target!r}")
        y, sample = sample[target], sample.drop(columns=[target])
    features = _align_with_estimator(estimator, sample, notes)
    task = _task_of(estimator)
    classes = [str(c) for c in estimator.classes_] if task == "classification" else None
    labelled = features.assign(**{target: y}) if target is not None and y is not None else features
    schema = infer_schema(labelled, task=task, target=target, classes=classes)
    tolerant = mark_unknown_tolerant(schema, estimator)
    if tolerant:
        notes.append(
            f"the pipeline encodes categories it never saw ({', '.join(tolerant)}): such values "
            "are predicted with a warning instead of refused"
        )
    frame = records_to_frame(schema, schema.validate_records(schema.examples))
    try:  # one real prediction, through the same conversion the predictor uses
        estimator.predict(as_model_input(estimator, frame.head(SAMPLE_CHECK_ROWS)))
    except Exception as exc:
        raise ArtifactError(
            f"the model failed to predict on records from the sample ({type(exc).__name__}: "
            f"{exc}); check that the sample has the columns and types the model was fitted on"
        ) from exc
    metrics: dict[str, float] = {"n_sample": float(len(sample))}
    if y is not None:
        full = records_to_frame(schema, records_from_frame(features, schema.features))
        predicted = estimator.predict(as_model_input(estimator, full))
        if task == "classification":
            metrics["sample_accuracy"] = float(
                accuracy_score(y.astype(str), [str(p) for p in predicted])
            )
        else:
            metrics["sample_r2"] = float(r2_score(y, predicted))
            metrics["sample_mae"] = float(mean_absolute_error(y, predicted))
        notes.append(
            "metrics are measured on the sample you gave, which may overlap the training data"
        )
    manifest = store.save(
        name=name,
        schema=schema,
        metrics=metrics,
        source="import",
        model_file=model_path,
        estimator=estimator,
    )
    return ImportReport(manifest=manifest, notes=notes)
