"""Which input columns a fitted pipeline encodes even when a category is new to it.

`OneHotEncoder(handle_unknown="ignore")` (or "infrequent_if_exist", "warn") and
`OrdinalEncoder(handle_unknown="use_encoded_value")` turn a category they never saw into a
known code instead of failing. For such a column an unknown value is real data the model can
take: the schema accepts it with a warning (`Feature.allow_unknown`) instead of refusing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from model.schema import ModelSchema

TOLERANT = {
    "OneHotEncoder": {"ignore", "infrequent_if_exist", "warn"},
    "OrdinalEncoder": {"use_encoded_value"},
}


def _tolerates_unknown(step: Any) -> bool:
    return getattr(step, "handle_unknown", None) in TOLERANT.get(type(step).__name__, set())


def _first_encoder_tolerates(transformer: Any) -> bool:
    """A column transformer's branch: the first encoder in it decides (imputers come before)."""
    steps = [s for _, s in getattr(transformer, "steps", [])] or [transformer]
    for step in steps:
        if type(step).__name__ in TOLERANT:
            return _tolerates_unknown(step)
    return False


def _branches(estimator: Any) -> Iterator[tuple[Any, list[str]]]:
    """(transformer, its column names) for every ColumnTransformer inside the estimator."""
    for step in [s for _, s in getattr(estimator, "steps", [])] or [estimator]:
        for _name, transformer, columns in getattr(step, "transformers_", []):
            names = getattr(step, "feature_names_in_", None)
            if isinstance(columns, str):
                columns = [columns]
            resolved = [
                str(names[c]) if isinstance(c, int) and names is not None else str(c)
                for c in list(columns)
            ]
            yield transformer, resolved


def unknown_tolerant_columns(estimator: Any) -> set[str]:
    """Names of the input columns whose encoder maps unseen categories to a known code."""
    found: set[str] = set()
    steps = [s for _, s in getattr(estimator, "steps", [])] or [estimator]
    if any(type(s).__name__ in TOLERANT for s in steps) and _first_encoder_tolerates(estimator):
        found.update(str(c) for c in getattr(estimator, "feature_names_in_", []))
    for transformer, columns in _branches(estimator):
        if _first_encoder_tolerates(transformer):
            found.update(columns)
    return found


def mark_unknown_tolerant(schema: ModelSchema, estimator: Any) -> list[str]:
    """Set `allow_unknown` on the categories the estimator encodes when unseen; their names."""
    tolerant = unknown_tolerant_columns(estimator)
    marked = []
    for feature in schema.features:
        if feature.kind == "category" and feature.name in tolerant:
            feature.allow_unknown = True
            marked.append(feature.name)
    return marked
