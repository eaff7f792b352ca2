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
SCHEMA_FORMAT = 2  # the manifest format whose schema this module reads as is


def upgrade_schema(schema: dict[str, Any], format_version: int) -> dict[str, Any]:
    """A saved schema in today's terms. Format 1 had only inferred bounds, and refused values
    outside them: they are the expected range now (the kit had no way to declare a hard limit
    then). The sha256 covers the model file, so upgrading a manifest in memory is safe."""
    if format_version >= SCHEMA_FORMAT:
        return schema
    features = []
    for feature in schema.get("features", []):
        feature = dict(feature)
        feature["expected_min"] = feature.pop("minimum", None)
        feature["expected_max"] = feature.pop("maximum", None)
        features.append(feature)
    return {**schema, "features": features}


class Feature(BaseModel):
    """One input column of the model: what a valid value is, and what a usual value is.

    Two kinds of limits, on purpose:

    - `minimum`/`maximum` are **hard limits**: a value outside is refused (a field error). The
      kit never invents them; they come from the user (`kit import --annotations`).
    - `expected_min`/`expected_max` are the **expected range**, inferred from a sample: a value
      outside is real data, accepted and predicted, with a warning that the model extrapolates.

    Likewise a category's `choices` are hard unless `allow_unknown`: then (e.g. the pipeline has
    `OneHotEncoder(handle_unknown="ignore")`) another value is predicted with a warning.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: FeatureKind
    minimum: float | None = None  # hard limits: declared by the user
    maximum: float | None = None
    expected_min: float | None = None  # expected range: seen in the sample (widened a little)
    expected_max: float | None = None
    choices: list[str] | None = None
    allow_unknown: bool = False  # categories: accept values outside `choices`, with a warning
    required: bool = True  # False: null/missing is accepted (the pipeline imputes it)
    default: Any = None
    description: str = ""
    unit: str | None = None

    @model_validator(mode="after")
    def _check_consistent(self) -> Feature:
        if self.kind == "category" and not self.choices:
            raise ValueError(f"feature {self.name!r} is a category but has no choices")
        for low, high, what in (
            (self.minimum, self.maximum, "minimum {} is above maximum {}"),
            (self.expected_min, self.expected_max, "expected_min {} is above expected_max {}"),
        ):
            if low is not None and high is not None and low > high:
                raise ValueError(f"feature {self.name!r}: " + what.format(low, high))
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
            return f"a text, usually one of {shown}" if self.allow_unknown else f"one of {shown}"
        if self.kind == "boolean":
            return "true or false"
        return "a text"

    def expected_range(self) -> str | None:
        """'29–63' (the range seen in the sample), or None when there is none."""
        low, high = self.expected_min, self.expected_max
        if low is None and high is None:
            return None
        if low is not None and high is not None:
            return f"{low:g}–{high:g}"
        return f">= {low:g}" if low is not None else f"<= {high:g}"

    def warning(self, value: Any) -> str | None:
        """For a *valid* value: why the model may be unreliable on it (None when it is usual).

        Called only on values that passed `check`; the text is the same in every surface.
        """
        if value is None:
            return None
        if self.kind in ("number", "integer"):
            low, high = self.expected_min, self.expected_max
            if (low is not None and value < low) or (high is not None and value > high):
                return (
                    f"{self.name} {float(value):g} is outside the range seen in the sample "
                    f"({self.expected_range()}): the model is extrapolating"
                )
            return None
        if self.kind == "category" and self.allow_unknown and value not in (self.choices or []):
            seen = ", ".join(repr(c) for c in (self.choices or []))
            return (
                f"{self.name} {value!r} is not a category the model was trained on ({seen}): "
                "it is encoded as unknown"
            )
        return None

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
    (`model.inference.infer_schema`: kinds, choices, and each number's *expected* range) and
    then refined by the user's annotations (`model.annotations`: titles, descriptions, units,
    hard limits, class names). It is JSON-serialisable (`model_dump(mode="json")`) and lives in
    the artifact manifest.

    Example::

        schema = ModelSchema(
            task="classification",
            classes=["Adelie", "Chinstrap", "Gentoo"],
            features=[
                Feature(name="bill_length_mm", kind="number", minimum=0,
                        expected_min=29, expected_max=63),
                Feature(name="island", kind="category", choices=["Biscoe", "Dream", "Torgersen"]),
            ],
        )
        clean = schema.validate_records([{"bill_length_mm": 71.0, "island": "Dream"}])
        schema.record_warnings(clean[0])
        # ['bill_length_mm 71 is outside the range seen in the sample (29–63): the model is
        #   extrapolating']
        schema.validate_records([{"bill_length_mm": -1.0, "island": "Dream"}])
        # InvalidInput: feature 'bill_length_mm' must be a number >= 0, got -1.0

    `validate_records` is strict: no type coercion ("40" is not a number, true is not 1), no
    NaN or infinity, no unknown fields, values within the hard limits, and one error per bad
    field, so that callers can show them all at once. A value outside the expected range is
    *not* an error: the prediction is made and carries a warning (`record_warnings`).
    """

    model_config = ConfigDict(extra="forbid")

    task: Task
    features: list[Feature] = Field(min_length=1)
    classes: list[str] | None = None
    target: str | None = None
    examples: list[Record] = Field(default_factory=list)
    title: str = ""  # shown by the UIs and the API docs (annotations)
    description: str = ""
    class_names: dict[str, str] = Field(default_factory=dict)  # label -> name shown by the UIs

    @model_validator(mode="after")
    def _check_consistent(self) -> ModelSchema:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"feature names must be unique, got {names}")
        if self.task == "classification" and not self.classes:
            raise ValueError("a classification schema needs its class labels in `classes`")
        unknown = [label for label in self.class_names if label not in (self.classes or [])]
        if unknown:
            raise ValueError(
                f"class_names names classes the model does not have: {unknown}; "
                f"its classes are {self.classes}"
            )
        return self

    def class_name(self, label: str) -> str:
        """What the UIs show for a class label: its display name, else the label itself."""
        return self.class_names.get(label, label)

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

    def record_warnings(self, record: Mapping[str, Any]) -> list[str]:
        """Warnings for a valid record: values outside the expected range, unknown categories.

        In feature order; empty for a usual record. A warning never refuses a record: the
        prediction is made and carries them (`Prediction.warnings`).
        """
        found = []
        for feature in self.features:
            message = feature.warning(record.get(feature.name))
            if message is not None:
                found.append(message)
        return found

    def same_inputs(self, other: ModelSchema) -> bool:
        """Whether records valid for one are valid for the other, read the same way: the
        features (names, kinds, limits, choices) and the task's classes, ignoring texts."""
        texts = {"description", "unit", "default", "expected_min", "expected_max"}
        mine = [f.model_dump(exclude=texts) for f in self.features]
        theirs = [f.model_dump(exclude=texts) for f in other.features]
        return (mine, self.task, self.classes) == (theirs, other.task, other.classes)

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
