"""The Streamlit demo, generated from the schema (run by `kit demo --ui streamlit`).

Settings come from the environment (`KIT_HOME`, `KIT_BACKEND`, `KIT_AUTH`); a test can inject a
Predictor with `AppTest.session_state["predictor"] = ...` before the first run.
"""

from __future__ import annotations

import hmac
from typing import Any

import pandas as pd
import streamlit as st

from app_production.backends import open_predictor
from app_prototype import presentation as ui
from model.errors import InvalidInput, KitError, ServiceUnavailable
from model.predictor import Predictor
from model.schema import Feature, ModelSchema
from model.settings import get_settings, parse_auth

EXAMPLE_NONE = "(defaults)"


@st.cache_resource(show_spinner="Loading the model…")  # type: ignore[untyped-decorator]
def load_predictor(backend: str, home: str) -> Predictor:
    """Once per process (and per backend/home), never at import time."""
    settings = get_settings().model_copy(update={"backend": backend})
    return open_predictor(settings.backend, settings)


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
            st.rerun()
        st.error("Wrong username or password")
    st.stop()


def _widget(feature: Feature) -> Any:
    """One widget; its value lives in session state (set by `_fill_widgets`)."""
    key, help_text = f"in_{feature.name}", ui.help_text(feature)
    if feature.kind in ("number", "integer"):
        # No min/max on the widget: Streamlit silently resets out-of-range values; the schema's
        # validation below names the field instead.
        return st.number_input(  # value=None: a cleared field is sent as missing, not 0.0
            feature.name,
            value=None,
            step=1 if feature.kind == "integer" else None,
            key=key,
            help=help_text,
            placeholder=None if feature.required else "empty = missing",
        )
    if feature.kind == "category":
        return st.selectbox(
            feature.name,
            ui.choices_of(feature),
            key=key,
            help=help_text,
            accept_new_options=feature.allow_unknown,  # the pipeline encodes unseen categories
        )
    if feature.kind == "boolean":
        return st.checkbox(feature.name, key=key, help=help_text)
    return st.text_input(feature.name, key=key, help=help_text)


def _fill_widgets(schema: ModelSchema, only_missing: bool = False) -> None:
    """Put the chosen example (or the defaults) into the widgets' state before they are drawn."""
    chosen = st.session_state.get("example", EXAMPLE_NONE)
    rows = ui.example_rows(schema)
    labels = [f"Example {i + 1}" for i in range(len(rows))]
    values = (
        rows[labels.index(chosen)] if chosen in labels else [f.default for f in schema.features]
    )
    for feature, value in zip(schema.features, values, strict=True):
        if only_missing and f"in_{feature.name}" in st.session_state:
            continue
        if feature.kind == "integer" and value is not None:
            value = int(value)
        elif feature.kind == "number" and value is not None:
            value = float(value)
        st.session_state[f"in_{feature.name}"] = value


def show_prediction(predictor: Predictor, schema: ModelSchema, values: list[Any]) -> None:
    try:
        prediction = predictor.predict([ui.record_from_widgets(schema, values)])[0]
    except InvalidInput as exc:
        for error in exc.errors:
            st.error(f"Invalid input: {error.message}")
        return
    except ServiceUnavailable as exc:
        st.error(f"Model service unavailable: {exc}")
        return
    st.success(f"Prediction: {ui.prediction_summary(prediction, schema)}")
    for message in prediction.warnings or []:
        st.warning(message)
    if prediction.probabilities:
        chart = pd.DataFrame(
            ui.probabilities_sorted(prediction, schema), columns=["class", "probability"]
        )
        st.bar_chart(chart, x="class", y="probability", horizontal=True, sort=False)
    st.caption(f"answered by model version {prediction.model_version}")
    with st.expander("Raw prediction (the API's JSON)"):
        st.json(prediction.to_json())


def main() -> None:
    settings = get_settings()
    st.set_page_config(page_title="Model demo", layout="wide")
    if settings.auth is not None:
        password_gate(*parse_auth(settings.auth.get_secret_value()))
    try:
        predictor = st.session_state.get("predictor") or load_predictor(
            settings.backend, str(settings.home)
        )
        info = predictor.info()
    except KitError as exc:
        st.error(str(exc))
        st.stop()
    schema = info.model_schema
    st.markdown(ui.header_markdown(info))
    examples = [EXAMPLE_NONE] + [f"Example {i + 1}" for i in range(len(schema.examples))]
    st.selectbox("Start from", examples, key="example", on_change=_fill_widgets, args=(schema,))
    _fill_widgets(schema, only_missing=True)
    left, right = st.columns(2)
    with left, st.form("features"):
        values = [_widget(feature) for feature in schema.features]
        submitted = st.form_submit_button("Predict", type="primary")
    with right:
        if submitted:
            show_prediction(predictor, schema, values)
        else:
            st.info("Set the features and press Predict.")


main()
