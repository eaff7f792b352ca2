"""The one declaration of a model's inputs and outputs.

Everything that touches features is derived from a `ModelSchema`: the Gradio and Streamlit
widgets, record validation with field-level errors, example inputs, and (in production) the
pydantic input model of the BentoML API. It is saved inside the artifact's manifest, so a model
that a user brings with `kit import` needs no code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from model.errors import FieldError, InvalidInput

FeatureKind = Literal["number", "integer", "category", "boolean", "text"]
Task = Literal["classification", "regression"]
Record = dict[str, Any]


class Feature(BaseModel):
    """One input column of the model, with what a valid value looks like."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: FeatureKind
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] | None = None
    allow_unknown: bool = False  # categories: accept values outside `choices`
    required: bool = True  # False: null/missing is accepted (the pipeline imputes it)
    default: Any = None
    description: str = ""
    unit: str | None = None

    @model_validator(mode="after")
    def _check_consistent(self) -> Feature:
        if self.kind == "category" and not self.choices:
            raise ValueError(f"feature {self.name!r} is a category but has no choices")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(
                f"feature {self.name!r}: minimum {self.minimum} is above maximum {self.maximum}"
            )
        return self

    @property
    def label(self) -> str:
        """Widget label: the name, with the unit when there is one."""
        return self.name

    def expectation(self) -> str:
        """Human description of a valid value, used in errors and help texts."""
        if self.kind in ("number", "integer"):
            noun = "an integer" if self.kind == "integer" else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{noun} between {self.minimum:g} and {self.maximum:g}"
            if self.minimum is not None:
                return f"{noun} >= {self.minimum:g}"
            if self.maximum is not None:
                return f"{noun} <= {self.maximum:g}"
            return noun
        if self.kind == "category":
            shown = ", ".join(repr(c) for c in (self.choices or []))
            return f"one of {shown}" + (" (or another text)" if self.allow_unknown else "")
        if self.kind == "boolean":
            return "true or false"
        return "a text"

    def check(self, value: Any) -> str | None:
        """Return None when `value` is valid for this feature, else what is wrong."""
        if value is None:
            return None if not self.required else f"{self.expectation()} (required)"
        if self.kind in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return self.expectation()
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an int too large for a float, e.g. 10**400 from JSON
                finite = False
            if not finite:
                return f"{self.expectation()} (finite, not NaN or infinity)"
            if self.kind == "integer" and not float(value).is_integer():
                return self.expectation()
            too_low = self.minimum is not None and value < self.minimum
            too_high = self.maximum is not None and value > self.maximum
            return self.expectation() if too_low or too_high else None
        if self.kind == "boolean":
            return None if isinstance(value, bool) else self.expectation()
        if not isinstance(value, str):
            return self.expectation()
        if self.kind == "category" and not self.allow_unknown and value not in (self.choices or []):
            return self.expectation()
        return None


class ModelSchema(BaseModel):
    """Ordered features and the task of a model: the single source of truth for its I/O.

    A schema is usually inferred from a sample of the training data
    (`model.inference.infer_schema`) and then refined by hand (descriptions, units, bounds).
    It is JSON-serialisable (`model_dump(mode="json")`) and lives in the artifact manifest.

    Example::

        schema = ModelSchema(
            task="classification",
            classes=["Adelie", "Chinstrap", "Gentoo"],
            features=[
                Feature(name="bill_length_mm", kind="number", minimum=25, maximum=70),
                Feature(name="island", kind="category", choices=["Biscoe", "Dream", "Torgersen"]),
            ],
        )
        clean = schema.validate_records([{"bill_length_mm": 39.1, "island": "Dream"}])
        schema.validate_records([{"bill_length_mm": 612.0, "island": "Dream"}])
        # InvalidInput: feature 'bill_length_mm' must be a number between 25 and 70, got 612.0

    `validate_records` is strict: no type coercion ("40" is not a number, true is not 1), no
    NaN or infinity, no unknown fields, and one error per bad field, so that callers can show
    them all at once.
    """

    model_config = ConfigDict(extra="forbid")

    task: Task
    features: list[Feature] = Field(min_length=1)
    classes: list[str] | None = None
    target: str | None = None
    examples: list[Record] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_consistent(self) -> ModelSchema:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"feature names must be unique, got {names}")
        if self.task == "classification" and not self.classes:
            raise ValueError("a classification schema needs its class labels in `classes`")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"no feature named {name!r}; features are {self.feature_names}")

    def defaults(self) -> Record:
        """A record made of each feature's default value."""
        return {f.name: f.default for f in self.features}

    def validate_record(self, record: Any, index: int = 0) -> list[FieldError]:
        """All field errors of one record (an empty list when it is valid)."""
        if not isinstance(record, Mapping):
            return [FieldError(index, "(record)", "a JSON object keyed by feature name", record)]
        known = {f.name for f in self.features}  # once per record, not once per field
        errors = [
            FieldError(index, key, f"no such feature; features are {self.feature_names}", value)
            for key, value in record.items()
            if key not in known
        ]
        for feature in self.features:
            if feature.name not in record:
                if feature.required:
                    errors.append(
                        FieldError(
                            index, feature.name, f"{feature.expectation()} (required)", missing=True
                        )
                    )
                continue
            problem = feature.check(record[feature.name])
            if problem is not None:
                errors.append(FieldError(index, feature.name, problem, record[feature.name]))
        return errors

    def validate_records(self, records: Sequence[Any]) -> list[Record]:
        """Check records and return them complete (missing optional fields set to None).

        Raises `InvalidInput` listing every bad field of every record.
        """
        errors = [err for i, rec in enumerate(records) for err in self.validate_record(rec, i)]
        if errors:
            raise InvalidInput(errors)
        return [self.complete(rec) for rec in records]

    def complete(self, record: Mapping[str, Any]) -> Record:
        """A valid record with every feature, in order (missing optional ones as None)."""
        return {f.name: record.get(f.name) for f in self.features}
