"""Pydantic models generated from a `ModelSchema`, for OpenAPI documents: one record, the
answer of a prediction (the contract's Prediction shape) and the refusal of invalid records."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
)

from model.schema import Feature, ModelSchema

_TYPES: dict[str, Any] = {"number": float, "integer": int, "boolean": bool, "text": str}


def _whole_float_to_int(value: Any) -> Any:
    """181.0 is a valid integer, as in `Feature.check` (JSON numbers carry no int/float type)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _finite_int(value: int) -> int:
    if abs(value) > sys.float_info.max:  # 10**400 has no float: the model could not use it
        raise ValueError("integer too large (finite, not NaN or infinity)")
    return value


def _field(feature: Feature) -> tuple[Any, Any]:
    bounds = Field(ge=feature.minimum, le=feature.maximum)
    if feature.kind == "category" and not feature.allow_unknown:
        annotation: Any = Literal[tuple(feature.choices or [])]
    elif feature.kind == "integer":
        annotation = Annotated[
            int, bounds, BeforeValidator(_whole_float_to_int), AfterValidator(_finite_int)
        ]
    elif feature.kind == "number":
        annotation = Annotated[float, bounds]
    else:
        annotation = _TYPES.get(feature.kind, str)
    if not feature.required:
        annotation = annotation | None
    usual = feature.expected_range()
    known = ", ".join(feature.choices or []) if feature.allow_unknown else ""
    description = " · ".join(
        part
        for part in (
            feature.description,
            feature.unit and f"unit: {feature.unit}",
            usual and f"expected range {usual} (seen in the sample; outside it: a warning)",
            known and f"known categories: {known} (others: a warning)",
        )
        if part
    )
    examples = (feature.choices or []) if known else [feature.default]
    info = Field(
        default=... if feature.required else None,
        description=description or None,
        examples=[e for e in examples if e is not None] or None,
    )
    return annotation, info


def record_model(schema: ModelSchema, name: str = "Record") -> type[BaseModel]:
    """Strict pydantic model of a record: no coercion, no NaN/infinity, no unknown fields.

    The kit validates records with `ModelSchema.validate_records` (one error per field, the same
    messages everywhere); this model describes the same rules to OpenAPI readers and clients.
    """
    fields = {feature.name: _field(feature) for feature in schema.features}
    examples: Any = schema.examples[:1]
    config = ConfigDict(
        strict=True,
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": examples} if examples else None,
    )
    return create_model(name, __config__=config, **fields)  # type: ignore[call-overload, no-any-return]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def prediction_model(schema: ModelSchema, name: str = "Prediction") -> type[BaseModel]:
    """The contract's Prediction for this schema (`model.predictor.Prediction.to_json`).

    classification: label (one of the classes), probabilities (one per class), model_version;
    regression: value, model_version; either with `warnings` only when the record was unusual.
    """
    fields: dict[str, Any] = {}
    if schema.task == "classification":
        classes = tuple(schema.classes or [])
        probability = Annotated[float, Field(ge=0, le=1)]
        probabilities = create_model(  # type: ignore[call-overload]
            f"{name}Probabilities",
            __config__=ConfigDict(extra="forbid"),
            **{  # by alias: a label need not be an identifier ("0", "_x", "mean radius")
                f"class_{i}": (probability, Field(alias=label, title=label))
                for i, label in enumerate(classes)
            },
        )
        probabilities.__doc__ = "The probability of each class (they sum to 1)."
        fields["label"] = (Literal[classes], Field(description="The most probable class"))
        fields["probabilities"] = (probabilities, ...)
    else:
        target = f" of {schema.target}" if schema.target else ""
        fields["value"] = (float, Field(description=f"The predicted value{target}"))
    fields["model_version"] = (
        str,
        Field(description="The model version that answered (`kit publish` may change it)"),
    )
    fields["warnings"] = (
        list[str],
        Field(
            default=None,
            json_schema_extra=_no_default,  # absent when there are none, never null
            description="Only when the record was unusual for the model: a value outside the "
            "range seen in the sample, a category it never saw. The prediction is made.",
        ),
    )
    model: type[BaseModel] = create_model(
        name,
        __config__=ConfigDict(extra="forbid", protected_namespaces=()),
        __doc__="One answer of the model, in the order of the records.",
        **fields,
    )
    return model


def predictions_model(schema: ModelSchema, name: str = "Predictions") -> type[BaseModel]:
    """The 200 body of POST /predict: `{"predictions": [Prediction, ...]}`."""
    item = prediction_model(schema)
    model: type[BaseModel] = create_model(
        name,
        __doc__="One prediction per record, in the order of the records.",
        predictions=(list[item], ...),  # type: ignore[valid-type]
    )
    return model


class FieldErrorBody(BaseModel):  # as `model.errors.FieldError.to_json` writes it
    """One bad field of one record."""

    record: int = Field(description="Index of the record in `records`")
    field: str = Field(description="The feature, or `(record)` when the record is no object")
    expected: str = Field(description="What a valid value is")
    received: Any = Field(
        description="The value sent (null when it is missing)",
        json_schema_extra={"nullable": True},  # any JSON value, null included (OpenAPI 3.0)
    )
    missing: bool = Field(description="Whether a required feature was absent")
    message: str = Field(description="The error, for people")


class InvalidRecords(BaseModel):
    """422: the records do not match the schema; nothing was predicted."""

    error: str = Field(description="Every error, in one line")
    errors: list[FieldErrorBody] = Field(description="One entry per bad field")
