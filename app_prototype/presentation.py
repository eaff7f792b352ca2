"""What both UIs show, derived from the schema and the Predictor, with no UI framework here.

Gradio and Streamlit differ only in widgets; the mapping from widget values to a record, the
texts around the model, and how a prediction reads are written once, in this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from model import metrics
from model.errors import InvalidInput, KitError, ServiceUnavailable
from model.feedback import FeedbackSink, check_feedback
from model.predictor import ModelInfo, Prediction
from model.schema import Feature, ModelSchema, Record

MISSING_CHOICE = "(missing)"  # offered for optional categories: the pipeline imputes it
STALE_NOTE = "Inputs changed since the last prediction: press **Predict** for theirs."
EXAMPLE_NAME_LENGTH = 64  # an example's name, before "…"
NARROW = 4  # up to this many features: one column
WIDE = 8  # more than this: a wide model (three columns; Streamlit scrolls them in a box)
MAX_DECIMALS = 6
SIGNIFICANT = 4  # digits of a predicted value when the model's error is not known


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


def grid_columns(schema: ModelSchema) -> int:
    """How many widgets side by side, so that the form fits a screen next to its result: one
    for a few features, two for up to WIDE, three for more."""
    count = len(schema.features)
    return 1 if count <= NARROW else 2 if count <= WIDE else 3


def is_wide(schema: ModelSchema) -> bool:
    return len(schema.features) > WIDE


def decimals(feature: Feature, schema: ModelSchema) -> int:
    """Decimals to show a number with: as many as the data has (its default, the examples),
    at least one for a non-integer feature, at most six."""
    if feature.kind == "integer":
        return 0
    seen = [feature.default, *(example.get(feature.name) for example in schema.examples)]
    places = [_places(v) for v in seen if isinstance(v, int | float) and not isinstance(v, bool)]
    return min(max([1, *places]), MAX_DECIMALS)


def _places(value: float) -> int:
    if not math.isfinite(value):
        return 0
    exponent = Decimal(repr(float(value))).normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def widget_values(schema: ModelSchema, record: Record) -> list[Any]:
    """A record as widget values, in schema order (a missing category: the '(missing)' choice)."""
    values = []
    for feature in schema.features:
        value = record.get(feature.name)
        if value is None and feature.kind == "category":
            value = MISSING_CHOICE
        elif value is None and feature.kind == "text":
            value = ""
        values.append(value)
    return values


def values_from_json(schema: ModelSchema, text: str) -> list[Any]:
    """A record pasted as JSON -> widget values; checked like the API checks it (absent optional
    fields are missing). Raises ValueError (InvalidInput: one error per bad field)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(record, dict):
        raise ValueError(
            'a record must be a JSON object keyed by feature name, e.g. {"'
            + schema.features[0].name
            + '": ...}'
        )
    errors = schema.validate_record(record)
    if errors:
        raise InvalidInput(errors)
    return widget_values(schema, schema.complete(record))


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
    return [widget_values(schema, example) for example in schema.examples]


def example_names(schema: ModelSchema) -> list[str]:
    """Each example named by its content ('Torgersen · male · bill_length_mm 39.1 · …'):
    categories first, then numbers, leaving out what all examples share, cut at about
    EXAMPLE_NAME_LENGTH; twins get '(2)'."""
    examples = schema.examples
    shared = {
        f.name
        for f in schema.features
        if len(examples) > 1 and len({repr(e.get(f.name)) for e in examples}) == 1
    }
    names: list[str] = []
    for example in examples:
        name = _example_name(schema, example, skip=shared)
        twins = names.count(name) + sum(n.startswith(f"{name} (") for n in names)
        names.append(f"{name} ({twins + 1})" if twins else name)
    return names


def _example_name(schema: ModelSchema, example: Record, skip: set[str]) -> str:
    words, numbers = [], []
    for feature in schema.features:
        value = example.get(feature.name)
        if value is None or value == "" or feature.name in skip:
            continue
        if feature.kind == "boolean":
            words.append(feature.name if value else f"not {feature.name}")
        elif feature.kind in ("number", "integer"):
            unit = feature.unit or ""
            shown = f" {unit}" if unit and not feature.name.endswith(f"_{unit}") else ""
            numbers.append(f"{feature.name} {float(value):g}{shown}")
        else:
            words.append(str(value))
    name = ""
    for part in [*words, *numbers]:
        longer = f"{name} · {part}" if name else part
        if len(longer) > EXAMPLE_NAME_LENGTH:
            return f"{name} …" if name else longer[:EXAMPLE_NAME_LENGTH] + "…"
        name = longer
    return name or "(all missing)"


def attention_text(fields: Sequence[str]) -> str:
    """Next to the Predict button: which fields need attention ('' when none)."""
    if not fields:
        return ""
    need = "1 field needs" if len(fields) == 1 else f"{len(fields)} fields need"
    return f"⚠️ {need} attention: {', '.join(fields)}"


def backend_text(info: ModelInfo, show_url: bool = False) -> str:
    """Where the model runs. A remote model is 'model service (name:version)'; its URL means
    something only to the owner, on the machine that runs `kit demo` (`show_url`)."""
    if info.backend == "local":
        return "local: model in this process"
    service = f"model service ({info.title})"
    url = info.backend.removeprefix("remote: ")
    return f"{service} at {url}" if show_url else service


def unavailable_message(error: ServiceUnavailable, show_url: bool = False) -> str:
    """'Model service unavailable', and what can be done: the owner gets the reason (with the
    service's URL) and the commands; a tester, whom to tell."""
    if show_url:
        return (
            f"Model service unavailable: {error}. `kit status` shows what is wrong; "
            "`kit promote` starts the service again."
        )
    return (
        "Model service unavailable: the model behind this demo is not answering. Try again in a "
        "moment; if it keeps failing, tell the demo's owner (on their machine, `kit status` "
        "shows what is wrong and `kit promote` starts the service again)."
    )


def header_markdown(info: ModelInfo, show_url: bool = False) -> str:
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
        f"Backend: **{backend_text(info, show_url)}**"
        + (f" · metrics: {measured}" if measured else "")
    )
    return "\n\n".join(lines)


def class_label(schema: ModelSchema, label: str) -> str:
    """A class as the UIs show it: 'malignant (0)' when the user named it, else the label."""
    name = schema.class_name(label)
    return label if name == label else f"{name} ({label})"


def shown_probabilities(prediction: Prediction, schema: ModelSchema) -> dict[str, float]:
    """Class probabilities keyed by the names the UIs show."""
    return {class_label(schema, k): v for k, v in (prediction.probabilities or {}).items()}


def prediction_summary(
    prediction: Prediction, schema: ModelSchema, metrics: Mapping[str, float] | None = None
) -> str:
    """One line: 'Adelie (98.6%)' or '3,810 (body_mass_g)' (a value rounded to what the model
    can tell: its mean absolute error, from `metrics`, when it was measured)."""
    if prediction.label is not None:
        confidence = (prediction.probabilities or {}).get(prediction.label)
        shown = f" ({confidence:.1%})" if confidence is not None else ""
        return f"{class_label(schema, prediction.label)}{shown}"
    if prediction.value is None:
        return "no value"
    # The schema's target has no unit (yet): its name stands in for one.
    target = f" ({schema.target})" if schema.target else ""
    return format_value(prediction.value, mae=_mae(metrics or {})) + target


def _mae(measured: Mapping[str, float]) -> float | None:
    found = {m.short: m.value for m in metrics.shown_metrics(dict(measured))}
    return found.get("mae")


def format_value(value: float, mae: float | None = None) -> str:
    """A predicted value for people: one digit finer than the model's typical error (`mae`)
    when known (3809.52 with an error of 280: '3,810'), else four significant digits, never
    rounding away integer digits; thousands separated."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if mae is not None and math.isfinite(mae) and mae > 0:
        exponent = math.floor(math.log10(mae)) - 1
    elif abs(value) < 1e-3:
        return f"{value:.{SIGNIFICANT}g}"
    else:
        exponent = min(math.floor(math.log10(abs(value))) + 1 - SIGNIFICANT, 0)
    places = max(0, -exponent)
    return f"{round(value, -exponent):,.{places}f}"


def warnings_markdown(prediction: Prediction) -> str:
    """The prediction's warnings, one line each ('' when there are none)."""
    return "\n".join(f"⚠️ {message}" for message in prediction.warnings or [])


def probabilities_sorted(prediction: Prediction, schema: ModelSchema) -> list[tuple[str, float]]:
    return sorted(shown_probabilities(prediction, schema).items(), key=lambda kv: -kv[1])


FEEDBACK_TITLE = "Wrong? Tell us"
FEEDBACK_FIRST = "Predict first: feedback is about the prediction shown."
FEEDBACK_SAVED = "Thank you: saved with the record, the prediction and version {version}."


def feedback_label(schema: ModelSchema) -> str:
    return "the correct class" if schema.task == "classification" else "the correct value"


def send_feedback(
    sink: FeedbackSink,
    info: ModelInfo,
    record: Record,
    prediction: Mapping[str, Any] | None,
    correct: Any,
    comment: str,
    user: str | None,
    source: str,
) -> str:
    """Check and save one tester's feedback; the line to show (saved, or what is wrong, or
    that it could not be saved — the form keeps what the tester typed in every case)."""
    if not prediction:
        return FEEDBACK_FIRST
    payload = {
        "record": record,
        "prediction": dict(prediction),
        "correct": correct if correct not in ("", MISSING_CHOICE) else None,
        "comment": comment or "",
        "user": user or "",
        "source": source,
    }
    try:
        feedback = check_feedback(info.model_schema, info.name, payload)
        sink.save(feedback)
    except InvalidInput as exc:
        return "Feedback not saved: " + "; ".join(e.message for e in exc.errors)
    except ServiceUnavailable:
        return (
            "Feedback could not be saved: the model service is unavailable. What you typed is "
            "kept here: send it again in a moment."
        )
    except KitError as exc:  # e.g. the service refused the UI's API key
        return f"Feedback could not be saved: {exc}"
    return FEEDBACK_SAVED.format(version=feedback.version)
