"""What both UIs show, derived from the schema and the Predictor, with no UI framework here.

Gradio and Streamlit differ only in widgets; the mapping from widget values to a record, the
texts around the model, and how a prediction reads are written once, in this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model.predictor import ModelInfo, Prediction
from model.schema import Feature, ModelSchema, Record

MISSING_CHOICE = "(missing)"  # offered for optional categories: the pipeline imputes it
METRICS_SHOWN = ("test_accuracy", "test_f1_macro", "sample_accuracy", "sample_r2", "sample_mae")


def help_text(feature: Feature) -> str:
    """One line under a widget: description, unit, what is accepted."""
    parts = [feature.description] if feature.description else []
    if feature.unit:
        parts.append(f"unit: {feature.unit}")
    parts.append(feature.expectation() + ("" if feature.required else "; may be left empty"))
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
    """The always-visible header: model name:version, backend, headline metrics."""
    metrics = ", ".join(
        f"{name.removeprefix('test_').removeprefix('sample_')} {info.metrics[name]:.3f}"
        for name in METRICS_SHOWN
        if name in info.metrics
    )
    kind = info.model_schema.task
    lines = [
        f"### Model `{info.title}` · {kind}",
        f"Backend: **{backend_text(info)}**" + (f" · metrics: {metrics}" if metrics else ""),
    ]
    return "\n\n".join(lines)


def prediction_summary(prediction: Prediction, schema: ModelSchema) -> str:
    """One line: 'Adelie (98.6%)' or '4,215.3 g'."""
    if prediction.label is not None:
        confidence = (prediction.probabilities or {}).get(prediction.label)
        shown = f" ({confidence:.1%})" if confidence is not None else ""
        return f"{prediction.label}{shown}"
    target = f" ({schema.target})" if schema.target else ""
    return f"{prediction.value:,.6g}{target}" if prediction.value is not None else "no value"


def probabilities_sorted(prediction: Prediction) -> list[tuple[str, float]]:
    return sorted((prediction.probabilities or {}).items(), key=lambda kv: -kv[1])
