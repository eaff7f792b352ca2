"""`kit import`: register a user's own fitted estimator or Pipeline, with no code written."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score

from model.annotations import apply_annotations, load_annotations
from model.artifact import Manifest, ModelStore, check_name
from model.batch_input import MISSING, read_chunks
from model.encoders import mark_unknown_tolerant
from model.errors import ArtifactError, UsageError
from model.inference import infer_schema, records_from_frame
from model.predictor import as_model_input, records_to_frame
from model.schema import ModelSchema, Record, Task

SAMPLE_CHECK_ROWS = 5
HOLDOUT_CHUNK_ROWS = 10_000


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


def _misfits(
    schema: ModelSchema, records: list[Record], rows: list[int] | None = None
) -> tuple[list[int], str]:
    """Indices of the records the schema refuses, and the first one's problem (`rows`: the
    records' 1-based row numbers in their file, when not 1, 2, ...)."""
    bad, first = [], ""
    for i, record in enumerate(records):
        errors = schema.validate_record(record, i)
        if errors:
            first = first or f"row {rows[i] if rows else i + 1}: {errors[0].message}"
            bad.append(i)
    return bad, first


def _score(
    estimator: Any, schema: ModelSchema, records: list[Record], labels: list[Any], prefix: str
) -> dict[str, float]:
    """`prefix` + accuracy (classification) or r2 and mae (regression) of the records."""
    predicted = estimator.predict(as_model_input(estimator, records_to_frame(schema, records)))
    if schema.task == "classification":
        truth = [str(label) for label in labels]
        return {f"{prefix}accuracy": float(accuracy_score(truth, [str(p) for p in predicted]))}
    scores = {f"{prefix}r2": float(r2_score(labels, predicted))} if len(labels) > 1 else {}
    return {**scores, f"{prefix}mae": float(mean_absolute_error(labels, predicted))}


def _label(text: str | None, task: Task) -> Any:
    """A holdout row's target as the model predicts it, or None when it has no usable value."""
    if text is None or text in MISSING:
        return None
    if task == "classification":
        return text
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _holdout_metrics(
    estimator: Any, schema: ModelSchema, path: Path, target: str, notes: list[str]
) -> dict[str, float]:
    """holdout_* metrics on the rows of `path` that fit the schema (the others are counted)."""
    records: list[Record] = []
    labels: list[Any] = []
    rows: list[int] = []
    unlabelled = 0
    for chunk in read_chunks(path, schema, HOLDOUT_CHUNK_ROWS, key=target):
        for i in range(len(chunk)):
            label = _label(chunk.keys[i], schema.task)
            if label is None:
                unlabelled += 1
                continue
            records.append(chunk.record(i))
            labels.append(label)
            rows.append(chunk.first_row + i + 1)
    if unlabelled:
        notes.append(f"{unlabelled} holdout row(s) without a usable {target!r} value were left out")
    bad, first = _misfits(schema, records, rows)
    if len(bad) == len(records):  # none left (or none at all)
        raise UsageError(
            f"no row of the holdout {path} fits the model's schema"
            + (f" (first problem: {first})" if first else "")
            + f": give held-out rows with the sample's columns and a {target!r} value"
        )
    if bad:
        notes.append(
            f"{len(bad)} holdout row(s) that the schema refuses were left out of the metrics "
            f"(first: {first})"
        )
        skip = set(bad)
        records = [r for i, r in enumerate(records) if i not in skip]
        labels = [v for i, v in enumerate(labels) if i not in skip]
    metrics = _score(estimator, schema, records, labels, "holdout_")
    return {**metrics, "n_holdout": float(len(records))}


def _check_inputs(
    model_path: Path, sample_path: Path, holdout: Path | None, target: str | None
) -> None:
    """Usage errors first: missing files and options that need each other."""
    if holdout is not None and target is None:
        raise UsageError(
            "--holdout needs --target: the name of the label column, in the sample and the holdout"
        )
    for what, path in (("model", model_path), ("sample", sample_path), ("holdout", holdout)):
        if path is not None and not path.is_file():
            raise UsageError(f"{what} file {path} does not exist: check the path")


def import_model(
    store: ModelStore,
    model_path: Path,
    sample_path: Path,
    *,
    target: str | None = None,
    name: str | None = None,
    annotations: Path | None = None,
    holdout: Path | None = None,
) -> ImportReport:
    """Infer the schema from the sample, check it against the estimator, save an artifact.

    `annotations` (TOML or YAML, `model.annotations`) are applied to the inferred schema
    before the check prediction. Metrics: on `holdout` (held-out rows with the target) when
    given, named `holdout_*`, else on the sample itself (`sample_*`, which may overlap the
    training rows). Missing files and bad annotations are `UsageError`s (exit 2).
    """
    name = check_name(name or model_path.stem.lower().replace(" ", "-"))
    _check_inputs(model_path, sample_path, holdout, target)
    annotated = load_annotations(annotations) if annotations is not None else None
    try:
        sample = pd.read_csv(sample_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UsageError(f"sample file {sample_path} is not a readable CSV ({exc})") from exc
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
    needed = annotated is not None or y is not None  # one pass over the sample's rows
    sample_records = records_from_frame(features, schema.features) if needed else []
    if annotated is not None:
        schema = apply_annotations(schema, annotated)
        notes.append(f"annotations from {annotated.source}: {annotated.summary()}")
        refused, first = _misfits(schema, sample_records)
        if refused:
            notes.append(
                f"{len(refused)} of the {len(sample_records)} sample rows break the annotations "
                f"(first: {first}): such records are refused; check the limits and choices in "
                f"{annotated.source}"
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
    if holdout is not None and target is not None:
        metrics.update(_holdout_metrics(estimator, schema, holdout, target, notes))
    elif y is not None:
        metrics.update(_score(estimator, schema, sample_records, list(y), "sample_"))
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
        reference=features,  # the sample's input columns: what `kit monitor` compares with
    )
    return ImportReport(manifest=manifest, notes=notes)
