"""The Streamlit demo, generated from the schema of whatever Predictor it is given.

Streamlit runs a script: `scripts/streamlit_page.py` (what `kit demo --ui streamlit` runs)
builds the Predictor and calls `page` with it; this module knows only the Predictor protocol.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from app_prototype import presentation as ui
from model.errors import InvalidInput, KitError, ServiceUnavailable
from model.feedback import FeedbackSink
from model.predictor import ModelInfo, Prediction, Predictor
from model.schema import Feature, ModelSchema

EXAMPLE_NONE = "(defaults)"
PREDICT_NOW = "predict_now"  # set by a picked example or a pasted record: predict this run
JSON_ERROR = "json_error"
SCROLL_HEIGHT = 480  # px: a wide model's features scroll; Predict and the result stay in view
USER = "auth_name"  # the signed-in tester's user name
SHOWN = "shown"  # the last prediction shown: {"values", "record", "prediction"}


def password_gate(user: str, password: str) -> None:
    """Stop the script until the tester has given the right credentials."""
    if st.session_state.get("auth_ok"):
        return
    st.title("Sign in to the demo")
    with st.form("login"):
        given_user = st.text_input("Username", key="auth_user")
        given_password = st.text_input("Password", type="password", key="auth_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        user_ok = hmac.compare_digest(given_user.encode(), user.encode())
        password_ok = hmac.compare_digest(given_password.encode(), password.encode())
        if user_ok and password_ok:
            st.session_state["auth_ok"] = True
            st.session_state[USER] = given_user  # who sends feedback
            st.rerun()
        st.error("Wrong username or password")
    st.stop()


def _widget(feature: Feature, schema: ModelSchema) -> Any:
    """One widget, its description inline below it (as Gradio shows it); its value lives in
    session state (set by `_fill_widgets`)."""
    key = f"in_{feature.name}"
    if feature.kind in ("number", "integer"):
        places = ui.decimals(feature, schema)  # as many as the data has, not always two
        # No min/max on the widget: Streamlit silently resets out-of-range values; the schema's
        # validation below names the field instead.
        value = st.number_input(  # value=None: a cleared field is sent as missing, not 0.0
            feature.name,
            value=None,
            step=1 if feature.kind == "integer" else 10.0**-places,
            format="%d" if feature.kind == "integer" else f"%.{places}f",
            key=key,
            placeholder=None if feature.required else "empty = missing",
        )
    elif feature.kind == "category":
        value = st.selectbox(
            feature.name,
            ui.choices_of(feature),
            key=key,
            accept_new_options=feature.allow_unknown,  # the pipeline encodes unseen categories
        )
    elif feature.kind == "boolean":
        value = st.checkbox(feature.name, key=key)
    else:
        value = st.text_input(feature.name, key=key)
    st.caption(ui.help_text(feature))
    return value


def _widgets(schema: ModelSchema) -> list[Any]:
    """The widgets' values in schema order: a column for a few features, a grid for many."""
    columns = ui.grid_columns(schema)
    if columns == 1:
        return [_widget(feature, schema) for feature in schema.features]
    values = []
    for start in range(0, len(schema.features), columns):
        row = schema.features[start : start + columns]
        for cell, feature in zip(st.columns(columns), row, strict=False):
            with cell:
                values.append(_widget(feature, schema))
    return values


def _start_from(schema: ModelSchema) -> None:
    """A pick in "Start from": its values in the form, and its prediction beside it."""
    _fill_widgets(schema)
    st.session_state[PREDICT_NOW] = True


def _fill_from_json(schema: ModelSchema) -> None:
    """The pasted record in the form and predicted, or what is wrong with it."""
    try:
        values = ui.values_from_json(schema, st.session_state.get("record_json") or "")
    except ValueError as exc:
        st.session_state[JSON_ERROR] = f"Invalid record: {exc}"
        return
    _set_widgets(schema, values)
    st.session_state[PREDICT_NOW] = True


def _fill_widgets(schema: ModelSchema, only_missing: bool = False) -> None:
    """Put the chosen example (or the defaults) into the widgets' state before they are drawn."""
    chosen = st.session_state.get("example", EXAMPLE_NONE)
    rows, names = ui.example_rows(schema), ui.example_names(schema)
    values = rows[names.index(chosen)] if chosen in names else [f.default for f in schema.features]
    _set_widgets(schema, values, only_missing)


def _set_widgets(schema: ModelSchema, values: list[Any], only_missing: bool = False) -> None:
    for feature, value in zip(schema.features, values, strict=True):
        if only_missing and f"in_{feature.name}" in st.session_state:
            continue
        if feature.kind == "integer" and value is not None:
            value = int(value)
        elif feature.kind == "number" and value is not None:
            value = float(value)
        st.session_state[f"in_{feature.name}"] = value


def probability_chart(prediction: Prediction, schema: ModelSchema) -> None:
    """Class probabilities as bars, most likely first, on a fixed 0-100 % axis."""
    chart = pd.DataFrame(
        ui.probabilities_sorted(prediction, schema), columns=["class", "probability"]
    )
    spec = {
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {"field": "class", "type": "nominal", "sort": None, "title": None},
            "x": {
                "field": "probability",
                "type": "quantitative",
                "scale": {"domain": [0, 1]},
                "axis": {"format": ".0%"},
                "title": "probability",
            },
        },
    }
    st.vega_lite_chart(chart, spec, width="stretch")


def show_prediction(
    predictor: Predictor, info: ModelInfo, values: list[Any], show_service_url: bool = False
) -> None:
    schema = info.model_schema
    st.session_state.pop(SHOWN, None)
    record = ui.record_from_widgets(schema, values)
    try:
        prediction = predictor.predict([record])[0]
    except InvalidInput as exc:
        for error in exc.errors:
            st.error(f"Invalid input: {error.message}")
        return
    except ServiceUnavailable as exc:
        st.error(ui.unavailable_message(exc, show_service_url))
        return
    st.session_state[SHOWN] = {"values": values, "record": record, "prediction": prediction}
    _show(prediction, info)


def _show(prediction: Prediction, info: ModelInfo) -> None:
    schema = info.model_schema
    st.success(f"Prediction: {ui.prediction_summary(prediction, schema, info.metrics)}")
    for message in prediction.warnings or []:
        st.warning(message)
    if prediction.probabilities:
        probability_chart(prediction, schema)
    st.caption(f"answered by model version {prediction.model_version}")
    with st.expander("Raw prediction (the API's JSON)"):
        st.json(prediction.to_json())


def page(
    load_predictor: Callable[[], Predictor],
    *,
    auth: tuple[str, str] | None = None,
    show_service_url: bool = False,
    load_feedback: Callable[[Predictor], FeedbackSink] | None = None,
) -> None:
    """The whole page: the sign-in (with `auth`), then the model, loaded only then, and its
    form. `show_service_url`: the reader is the owner (the page is served on loopback only)."""
    st.set_page_config(page_title="Model demo", layout="wide")
    if auth is not None:
        password_gate(*auth)
    try:
        predictor = load_predictor()
        info = predictor.info()
    except KitError as exc:
        st.error(str(exc))
        st.stop()
    feedback = load_feedback(predictor) if load_feedback else None
    render(predictor, info, show_service_url=show_service_url, feedback=feedback)


def feedback_form(
    sink: FeedbackSink, info: ModelInfo, record: dict[str, Any], prediction: Prediction
) -> None:
    """ "Wrong? Tell us" under the prediction shown: the correct class (or value) and a
    comment, saved with the tester's user name; the form keeps what was typed."""
    schema = info.model_schema
    with st.expander(ui.FEEDBACK_TITLE), st.form("feedback"):
        if schema.task == "classification":
            classes = schema.classes or []
            correct = st.selectbox(
                ui.feedback_label(schema),
                classes,
                index=None,
                format_func=lambda c: ui.class_label(schema, c),
                key="fb_correct",
            )
        else:
            correct = st.number_input(ui.feedback_label(schema), value=None, key="fb_correct")
        comment = st.text_area("comment (optional)", key="fb_comment")
        if st.form_submit_button("Send feedback"):
            said = ui.send_feedback(
                sink,
                info,
                record,
                prediction.to_json(),
                correct,
                comment,
                st.session_state.get(USER),
                "streamlit",
            )
            (st.success if said.startswith("Thank you") else st.error)(said)


def render(
    predictor: Predictor,
    info: ModelInfo,
    *,
    show_service_url: bool = False,
    feedback: FeedbackSink | None = None,
) -> None:
    """The demo of the model behind `predictor`: header, form, result; with `feedback`,
    "Wrong? Tell us" under the result."""
    schema = info.model_schema
    st.markdown(ui.header_markdown(info, show_service_url))
    names = ui.example_names(schema)
    st.selectbox(
        "Start from", [EXAMPLE_NONE, *names], key="example", on_change=_start_from, args=(schema,)
    )
    _fill_widgets(schema, only_missing=True)
    wide = ui.is_wide(schema)
    left, right = st.columns([3, 2] if ui.grid_columns(schema) > 1 else [1, 1])
    with left:
        with st.form("features"):
            if wide:  # Predict by the result, above the features that scroll in their box
                submitted = st.form_submit_button("Predict", type="primary")
                with st.container(height=SCROLL_HEIGHT):
                    values = _widgets(schema)
            else:
                values = _widgets(schema)
                submitted = st.form_submit_button("Predict", type="primary")
        with st.expander("Paste a record as JSON"):
            st.text_area("record as JSON", key="record_json", placeholder=_json_hint(schema))
            st.button("Fill the form and predict", on_click=_fill_from_json, args=(schema,))
            if problem := st.session_state.pop(JSON_ERROR, None):
                st.error(problem)
    with right:
        shown = st.session_state.get(SHOWN)
        if submitted or st.session_state.pop(PREDICT_NOW, False):
            show_prediction(predictor, info, values, show_service_url)
        elif shown is not None and shown["values"] == values:  # e.g. feedback sent: no new call
            _show(shown["prediction"], info)
        else:
            st.info("Set the features and press Predict.")
        if feedback is not None and (shown := st.session_state.get(SHOWN)) is not None:
            feedback_form(feedback, info, shown["record"], shown["prediction"])


def _json_hint(schema: ModelSchema) -> str:
    return json.dumps(schema.examples[0] if schema.examples else schema.defaults())
