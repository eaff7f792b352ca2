"""What both UIs show, derived from the schema and the Predictor, with no UI framework here.

Gradio and Streamlit differ only in widgets; the mapping from widget values to a record, the
texts around the model, and how a prediction reads are written once, in this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model import metrics
from model.predictor import ModelInfo, Prediction
from model.schema import Feature, ModelSchema, Record

MISSING_CHOICE = "(missing)"  # offered for optional categories: the pipeline imputes it


def help_text(feature: Feature) -> str:
    """One line under a widget: description, unit, what is accepted."""
    parts = [feature.description] if feature.description else []
    if feature.unit:
        parts.append(f"unit: {feature.unit}")
    parts.append(feature.expectation() + ("" if feature.required else "; may be left empty"))
    if usual := feature.expected_range():
        parts.append(f"usually {usual} (the sample's range)")
    return " · ".join(parts)


def choices_of(feature: Feature) -> list[str]:
    choices = list(feature.choices or [])
    return choices if feature.required else [*choices, MISSING_CHOICE]


def widget_default(feature: Feature) -> Any:
    return feature.default


def record_from_widgets(schema: ModelSchema, values: Sequence[Any]) -> Record:
    """Widget values (in schema order) -> a record for `Predictor.predict`.

    Empty widgets become None (missing); integral floats from number widgets become ints for
    integer features, so the record is valid JSON for a strict API. Nothing is validated here.
    """
    if len(values) != len(schema.features):
        raise ValueError(f"expected {len(schema.features)} values, got {len(values)}")
    record: Record = {}
    for feature, value in zip(schema.features, values, strict=True):
        if value == "" or value == MISSING_CHOICE:
            value = None
        if feature.kind == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
        record[feature.name] = value
    return record


def example_rows(schema: ModelSchema) -> list[list[Any]]:
    """The schema's examples as widget values (for gr.Examples and the Streamlit picker)."""
    rows = []
    for example in schema.examples:
        row = []
        for feature in schema.features:
            value = example.get(feature.name)
            if value is None and feature.kind == "category":
                value = MISSING_CHOICE
            row.append(value)
        rows.append(row)
    return rows


def backend_text(info: ModelInfo) -> str:
    return "local: model in this process" if info.backend == "local" else info.backend


def header_markdown(info: ModelInfo) -> str:
    """The always-visible header: title, model name:version, backend, headline metrics (with
    the data they were measured on: an import sample may include training rows)."""
    schema = info.model_schema
    measured = metrics.describe(info.metrics)
    title = schema.title or f"Model `{info.title}`"
    lines = [f"### {title} · {schema.task}"]
    if schema.title:
        lines.append(f"Model `{info.title}`")
    if schema.description:
        lines.append(schema.description)
    lines.append(
        f"Backend: **{backend_text(info)}**" + (f" · metrics: {measured}" if measured else "")
    )
    return "\n\n".join(lines)


def class_label(schema: ModelSchema, label: str) -> str:
    """A class as the UIs show it: 'malignant (0)' when the user named it, else the label."""
    name = schema.class_name(label)
    return label if name == label else f"{name} ({label})"


def shown_probabilities(prediction: Prediction, schema: ModelSchema) -> dict[str, float]:
    """Class probabilities keyed by the names the UIs show."""
    return {class_label(schema, k): v for k, v in (prediction.probabilities or {}).items()}


def prediction_summary(prediction: Prediction, schema: ModelSchema) -> str:
    """One line: 'Adelie (98.6%)' or '4,215.3 g'."""
    if prediction.label is not None:
        confidence = (prediction.probabilities or {}).get(prediction.label)
        shown = f" ({confidence:.1%})" if confidence is not None else ""
        return f"{class_label(schema, prediction.label)}{shown}"
    target = f" ({schema.target})" if schema.target else ""
    return f"{prediction.value:,.6g}{target}" if prediction.value is not None else "no value"


def warnings_markdown(prediction: Prediction) -> str:
    """The prediction's warnings, one line each ('' when there are none)."""
    return "\n".join(f"⚠️ {message}" for message in prediction.warnings or [])


def probabilities_sorted(prediction: Prediction, schema: ModelSchema) -> list[tuple[str, float]]:
    return sorted(shown_probabilities(prediction, schema).items(), key=lambda kv: -kv[1])
