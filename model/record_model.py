"""A pydantic model of one record, generated from a `ModelSchema` (for OpenAPI documents)."""

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
