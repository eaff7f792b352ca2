"""Infer a `ModelSchema` from a sample of training data (a pandas DataFrame)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from model.schema import Feature, ModelSchema, Record, Task

MAX_CATEGORIES = 50  # more distinct strings than this (or mostly unique values) means free text
BOUNDS_MARGIN = 0.1  # expected range: the sample's range widened by 10% on each side


def _nice_bounds(low: float, high: float, integral: bool) -> tuple[float, float]:
    """Widen [low, high] by a margin and round outwards to a readable step."""
    span = high - low
    if span == 0:
        span = abs(high) or 1.0
    step = 10 ** math.floor(math.log10(span * BOUNDS_MARGIN)) if span * BOUNDS_MARGIN > 0 else 1.0
    if integral:
        step = max(step, 1.0)
    new_low = math.floor((low - span * BOUNDS_MARGIN) / step) * step
    new_high = math.ceil((high + span * BOUNDS_MARGIN) / step) * step
    if low >= 0 > new_low:
        new_low = 0.0  # non-negative data stays non-negative
    return round(new_low, 10), round(new_high, 10)


def _is_bool_column(values: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(values) or (
        len(values) > 0 and all(isinstance(v, bool | np.bool_) for v in values)
    )


def infer_feature(name: str, column: pd.Series) -> Feature:
    """Infer one feature: its kind, bounds or choices, default, and whether it may be missing."""
    values = column.dropna()
    required = len(values) == len(column)
    if len(values) == 0:
        raise ValueError(f"column {name!r} has no values in the sample: cannot infer its type")
    if _is_bool_column(values):
        return Feature(
            name=name, kind="boolean", required=required, default=bool(values.mode().iloc[0])
        )
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype(float)
        integral = pd.api.types.is_integer_dtype(column) or (
            not required and bool((numbers == numbers.round()).all())
        )
        low, high = _nice_bounds(float(numbers.min()), float(numbers.max()), integral)
        median = float(numbers.median())
        default: float | int = round(median) if integral else float(f"{median:.6g}")
        return Feature(
            name=name,
            kind="integer" if integral else "number",
            expected_min=low,  # an expectation, never a limit: the sample is not the world
            expected_max=high,
            required=required,
            default=min(max(default, low), high),
        )
    texts = values.astype(str)
    distinct = sorted(texts.unique())
    looks_categorical = len(distinct) <= MAX_CATEGORIES and len(distinct) <= max(
        2, 0.5 * len(texts)
    )
    if looks_categorical:
        return Feature(
            name=name,
            kind="category",
            choices=distinct,
            required=required,
            default=str(texts.mode().iloc[0]),
        )
    return Feature(name=name, kind="text", required=required, default=str(texts.iloc[0]))


def _pick_examples(sample: pd.DataFrame, labels: pd.Series | None, n: int) -> pd.DataFrame:
    """Complete rows when there are enough; one per class first when the labels are known."""
    complete = sample.dropna()
    rows = complete if len(complete) >= n else sample
    if labels is not None and len(rows):
        per_class = rows.groupby(labels.loc[rows.index].astype(str), sort=True).head(1)
        if len(per_class) >= n:
            return per_class
        rest = rows.drop(index=per_class.index)
        extra = rest.sample(n=min(n - len(per_class), len(rest)), random_state=0)
        return pd.concat([per_class, extra])
    return rows.sample(n=min(n, len(rows)), random_state=0) if len(rows) else rows


def records_from_frame(frame: pd.DataFrame, features: list[Feature]) -> list[Record]:
    """Rows as JSON-friendly records (python types, None for missing), typed by the features."""
    records = []
    for _, row in frame.iterrows():
        record: Record = {}
        for f in features:
            value = row[f.name]
            if pd.isna(value):
                record[f.name] = None
            elif f.kind == "integer":
                record[f.name] = int(value)
            elif f.kind == "number":
                record[f.name] = float(value)
            elif f.kind == "boolean":
                record[f.name] = bool(value)
            else:
                record[f.name] = str(value)
        records.append(record)
    return records


def infer_schema(
    sample: pd.DataFrame,
    *,
    task: Task,
    target: str | None = None,
    classes: list[str] | None = None,
    n_examples: int = 3,
) -> ModelSchema:
    """Infer the schema of a model's inputs from a sample of its training data.

    The target column, when named, is dropped. Columns with missing values become optional
    features; a number's expected range is the sample's range widened by 10% and rounded
    outwards (values outside it are predicted with a warning, never refused).
    """
    labels = None
    if target is not None:
        if target not in sample.columns:
            raise ValueError(
                f"target column {target!r} is not in the sample; columns are {list(sample.columns)}"
            )
        labels = sample[target] if task == "classification" else None
        sample = sample.drop(columns=[target])
    features = [infer_feature(str(name), sample[name]) for name in sample.columns]
    picked = _pick_examples(sample, labels, n_examples)
    return ModelSchema(
        task=task,
        features=features,
        classes=classes,
        target=target,
        examples=records_from_frame(picked, features),
    )
