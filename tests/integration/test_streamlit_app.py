"""The Streamlit demo, driven in-process with Streamlit's AppTest (no server, no browser).

Settings reach the script through the environment (`KIT_HOME`, `KIT_BACKEND`, `KIT_AUTH`), which it
reads on every run; a fake Predictor is injected through `at.session_state["predictor"]`.
Expected predictions come from `LocalPredictor` on the same records (parity, not fixed strings).
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app_prototype.presentation import MISSING_CHOICE
from model.errors import ServiceUnavailable
from model.predictor import LocalPredictor, ModelInfo, Prediction, Predictor
from model.schema import ModelSchema, Record
from tests.helpers import DECLARED_LIMITS, ROOT, declare_limits

APP = ROOT / "app_prototype" / "streamlit_app.py"
# A Gentoo-like penguin: far from the schema defaults, so a UI that ignored the inputs would fail.
CHANGED: Record = {
    "island": "Biscoe",
    "bill_length_mm": 47.5,
    "bill_depth_mm": 14.8,
    "flipper_length_mm": 217,
    "body_mass_g": 5200,
    "sex": "female",
}


@pytest.fixture(autouse=True)
def _fresh_streamlit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No predictor cached by an earlier test, and none of the developer's KIT_ settings."""
    for name in ("KIT_HOME", "KIT_BACKEND", "KIT_AUTH"):
        monkeypatch.delenv(name, raising=False)
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture(scope="module")
def local(trained_home: Path) -> LocalPredictor:
    """The reference: the same model, in this process, outside the UI."""
    return LocalPredictor.from_home(trained_home)


@pytest.fixture
def schema(local: LocalPredictor) -> ModelSchema:
    return local.info().model_schema


def start_app(monkeypatch: pytest.MonkeyPatch, home: Path, **env: str) -> AppTest:
    """Point the script at `home` (plus any KIT_ settings) and render it once."""
    monkeypatch.setenv("KIT_HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button_labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def click(at: AppTest, label: str) -> None:
    """Click the one button (form submit buttons included) with this label, then rerun."""
    matches = [b for b in at.button if b.label == label]
    assert len(matches) == 1, f"expected one {label!r} button, found {button_labels(at)}"
    matches[0].click().run()
    assert not at.exception, [e.value for e in at.exception]


def set_inputs(at: AppTest, schema: ModelSchema, record: Record) -> None:
    """Set each feature widget to the record's value (None = the '(missing)' choice)."""
    for feature in schema.features:
        value = record[feature.name]
        key = f"in_{feature.name}"
        if feature.kind == "category":
            at.selectbox(key=key).select(MISSING_CHOICE if value is None else value)
        else:
            at.number_input(key=key).set_value(value)


def widget_of(at: AppTest, name: str) -> Any:
    key = f"in_{name}"
    found = [w for w in [*at.selectbox, *at.number_input] if w.key == key]
    assert len(found) == 1, f"expected one widget with key {key!r}"
    return found[0]


def widget_values(at: AppTest, schema: ModelSchema) -> Record:
    values: Record = {}
    for feature in schema.features:
        key = f"in_{feature.name}"
        widget = at.selectbox(key=key) if feature.kind == "category" else at.number_input(key=key)
        values[feature.name] = widget.value
    return values


def chart_data(at: AppTest) -> dict[str, float]:
    """The data behind the one st.bar_chart (AppTest exposes it only as a raw VegaLiteChart)."""
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1, f"expected one chart, found {len(charts)}"
    proto = charts[0].proto
    spec = json.loads(proto.spec)
    assert spec["mark"]["type"] == "bar"
    # Most likely class first: the data order is kept (Vega would sort classes by name).
    assert spec["encoding"]["y"].get("sort", "sorted by Vega") is None
    assert len(proto.datasets) == 1
    table = pa.ipc.open_stream(io.BytesIO(proto.datasets[0].data.data)).read_all()
    probabilities = table["probability"].to_pylist()
    assert probabilities == sorted(probabilities, reverse=True)
    return dict(zip(table["class"].to_pylist(), probabilities, strict=True))


def assert_shows(at: AppTest, expected: Prediction) -> None:
    """The right column shows `expected`: message, chart, version caption and raw JSON."""
    assert not at.error, [e.value for e in at.error]
    assert len(at.success) == 1
    message = at.success[0].value
    assert expected.label is not None and expected.probabilities is not None
    confidence = expected.probabilities[expected.label]
    assert message.startswith("Prediction:"), message
    assert message == f"Prediction: {expected.label} ({confidence:.1%})"
    shown = chart_data(at)
    assert shown.keys() == expected.probabilities.keys()
    for label, probability in expected.probabilities.items():
        assert shown[label] == pytest.approx(probability, abs=1e-9)
    assert [c.value for c in at.caption] == [f"answered by model version {expected.model_version}"]
    raw = json.loads(at.json[0].value)
    assert raw["label"] == expected.label
    assert raw["model_version"] == expected.model_version
    assert raw["probabilities"] == pytest.approx(expected.probabilities, abs=1e-9)


def test_page_shows_model_backend_and_one_widget_per_feature_with_schema_defaults(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, local: LocalPredictor
) -> None:
    at = start_app(monkeypatch, trained_home)
    info = local.info()
    assert info.title == "penguins:v1"

    header = at.markdown[0].value
    assert "`penguins:v1`" in header
    assert "Backend: **local" in header
    assert "classification" in header

    schema = info.model_schema
    keys = [w.key for w in [*at.selectbox, *at.number_input] if w.key.startswith("in_")]
    assert sorted(keys) == sorted(f"in_{f.name}" for f in schema.features)
    assert widget_values(at, schema) == schema.defaults()
    for feature in schema.features:
        widget_type = type(widget_of(at, feature.name)).__name__
        assert widget_type == ("Selectbox" if feature.kind == "category" else "NumberInput")
        if feature.kind == "category":
            expected = [*(feature.choices or []), *([] if feature.required else [MISSING_CHOICE])]
            assert at.selectbox(key=f"in_{feature.name}").options == expected
    assert button_labels(at) == ["Predict"]
    assert [i.value for i in at.info] == ["Set the features and press Predict."]
    assert not at.success and not at.error


def test_predict_matches_local_predictor_with_chart_and_version(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    expected = local.predict([CHANGED])[0]
    at_defaults = local.predict([schema.defaults()])[0]
    assert expected.label != at_defaults.label, "CHANGED must not predict like the defaults"

    at = start_app(monkeypatch, trained_home)
    set_inputs(at, schema, CHANGED)
    click(at, "Predict")

    assert expected.label in at.success[0].value
    assert_shows(at, expected)
    assert expected.model_version == local.info().version == "v1"
    assert widget_values(at, schema) == CHANGED  # the form keeps what was entered
    assert not at.info


def test_start_from_example_fills_the_widgets(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    assert len(schema.examples) >= 2
    at = start_app(monkeypatch, trained_home)
    assert at.selectbox(key="example").options == [
        "(defaults)",
        *(f"Example {i + 1}" for i in range(len(schema.examples))),
    ]
    first = {f.name: schema.examples[0].get(f.name) for f in schema.features}
    assert first != schema.defaults()

    at.selectbox(key="example").select("Example 1").run()
    assert not at.exception
    assert widget_values(at, schema) == first
    click(at, "Predict")
    assert_shows(at, local.predict([first])[0])

    at.selectbox(key="example").select("Example 2").run()
    second = {f.name: schema.examples[1].get(f.name) for f in schema.features}
    assert widget_values(at, schema) == second

    at.selectbox(key="example").select("(defaults)").run()
    assert widget_values(at, schema) == schema.defaults()


def test_a_value_outside_the_sample_range_is_predicted_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, schema: ModelSchema
) -> None:
    at = start_app(monkeypatch, trained_home)
    at.number_input(key="in_bill_length_mm").set_value(612)
    click(at, "Predict")

    assert at.number_input(key="in_bill_length_mm").value == 612  # not silently reset
    assert not at.error, [e.value for e in at.error]
    assert at.success and "Prediction:" in at.success[0].value
    feature = schema.feature("bill_length_mm")
    assert [w.value for w in at.warning] == [
        f"bill_length_mm 612 is outside the range seen in the sample "
        f"({feature.expected_range()}): the model is extrapolating"
    ]


def test_a_declared_hard_limit_names_the_field_and_its_range(
    monkeypatch: pytest.MonkeyPatch, kit_home: Path
) -> None:
    declare_limits(kit_home)
    at = start_app(monkeypatch, kit_home)
    at.number_input(key="in_bill_length_mm").set_value(612)
    click(at, "Predict")

    assert at.number_input(key="in_bill_length_mm").value == 612  # not silently reset
    messages = [e.value for e in at.error]
    assert len(messages) == 1, messages
    low, high = DECLARED_LIMITS["bill_length_mm"]
    assert "'bill_length_mm'" in messages[0]
    assert f"between {low:g} and {high:g}" in messages[0]
    assert "612" in messages[0]
    assert not at.success
    assert not at.get("vega_lite_chart")


def test_two_bad_fields_give_one_error_each(
    monkeypatch: pytest.MonkeyPatch, kit_home: Path
) -> None:
    declare_limits(kit_home)
    at = start_app(monkeypatch, kit_home)
    at.number_input(key="in_bill_length_mm").set_value(612)
    at.number_input(key="in_body_mass_g").set_value(-5)
    click(at, "Predict")

    messages = [e.value for e in at.error]
    assert len(messages) == 2, messages
    assert any("'bill_length_mm'" in m for m in messages)
    assert any("'body_mass_g'" in m for m in messages)
    assert not at.success


def test_missing_optional_category_still_predicts(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    assert not schema.feature("sex").required
    at = start_app(monkeypatch, trained_home)
    at.selectbox(key="in_sex").select(MISSING_CHOICE)
    click(at, "Predict")

    expected = local.predict([{**schema.defaults(), "sex": None}])[0]
    assert_shows(at, expected)


def test_cleared_optional_number_is_sent_as_missing(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    assert not schema.feature("bill_length_mm").required
    at = start_app(monkeypatch, trained_home)
    at.number_input(key="in_bill_length_mm").set_value(None)
    click(at, "Predict")

    assert_shows(at, local.predict([{**schema.defaults(), "bill_length_mm": None}])[0])


class FlakyPredictor:
    """A Predictor whose service is down until `up` is set; then it answers like the real model."""

    def __init__(self, real: LocalPredictor) -> None:
        self.real = real
        self.up = False
        self.calls: list[list[Record]] = []

    def info(self) -> ModelInfo:
        return self.real.info()

    def predict(self, records: Sequence[Record]) -> list[Prediction]:
        self.calls.append(list(records))
        if not self.up:
            raise ServiceUnavailable("connection refused")
        return self.real.predict(records)


def test_service_unavailable_keeps_the_ui_up_and_it_recovers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    fake = FlakyPredictor(local)
    assert isinstance(fake, Predictor)
    monkeypatch.setenv("KIT_HOME", str(tmp_path))  # empty: only the injected predictor can answer
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state["predictor"] = fake
    at.run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert "`penguins:v1`" in at.markdown[0].value

    click(at, "Predict")
    assert len(fake.calls) == 1
    assert fake.calls[0] == [schema.defaults()]
    messages = [e.value for e in at.error]
    assert len(messages) == 1, messages
    assert messages[0].startswith("Model service unavailable")
    assert "connection refused" in messages[0]
    assert not at.success
    assert not at.exception
    assert button_labels(at) == ["Predict"]  # the form is still there

    fake.up = True
    click(at, "Predict")
    assert len(fake.calls) == 2
    assert_shows(at, local.predict([schema.defaults()])[0])


def test_password_gate(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    password = secrets.token_urlsafe()
    at = start_app(monkeypatch, trained_home, KIT_AUTH=f"tester:{password}")

    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert button_labels(at) == ["Sign in"]
    assert not at.markdown, "the model header must stay hidden before sign-in"
    assert not at.number_input and not at.error

    at.text_input(key="auth_user").input("tester")
    at.text_input(key="auth_password").input(password + "x")
    click(at, "Sign in")
    assert [e.value for e in at.error] == ["Wrong username or password"]
    assert "Predict" not in button_labels(at)
    assert not at.markdown and not at.number_input

    at.text_input(key="auth_user").input("someone")
    at.text_input(key="auth_password").input(password)
    click(at, "Sign in")
    assert [e.value for e in at.error] == ["Wrong username or password"]
    assert "Predict" not in button_labels(at)

    at.text_input(key="auth_user").input("tester")
    at.text_input(key="auth_password").input(password)
    click(at, "Sign in")
    assert not at.error, [e.value for e in at.error]
    assert button_labels(at) == ["Predict"]
    assert "`penguins:v1`" in at.markdown[0].value
    assert not at.text_input

    click(at, "Predict")  # signed in for the rest of the session
    assert_shows(at, local.predict([schema.defaults()])[0])


def test_no_model_trained_says_to_run_kit_train(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    at = start_app(monkeypatch, home)

    messages = [e.value for e in at.error]
    assert len(messages) == 1, messages
    assert "kit train" in messages[0]
    assert not at.exception
    assert not at.button and not at.number_input and not at.markdown


def test_settings_are_read_on_every_run_and_the_cache_is_keyed_by_home_and_backend(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, tmp_path: Path
) -> None:
    """One process, no cache clearing in between: each run follows the current environment."""
    at = start_app(monkeypatch, trained_home, KIT_BACKEND="local")
    assert "`penguins:v1`" in at.markdown[0].value and not at.error

    empty = tmp_path / "no-model"
    empty.mkdir()
    at = start_app(monkeypatch, empty, KIT_BACKEND="local")
    assert len(at.error) == 1 and "kit train" in at.error[0].value
    assert not at.markdown

    at = start_app(monkeypatch, trained_home, KIT_BACKEND="remote")  # nothing was promoted
    assert len(at.error) == 1 and "kit promote" in at.error[0].value
    assert not at.markdown and not at.button

    at = start_app(monkeypatch, trained_home, KIT_BACKEND="local")
    assert "`penguins:v1`" in at.markdown[0].value and not at.error


def test_a_regression_model_shows_a_value(
    monkeypatch: pytest.MonkeyPatch, regression_home: Path
) -> None:
    at = start_app(monkeypatch, regression_home)
    assert "body-mass:v1" in " ".join(m.value for m in at.markdown)
    click(at, "Predict")
    expected = LocalPredictor.from_home(regression_home).predict(
        [LocalPredictor.from_home(regression_home).schema.defaults()]
    )[0]
    assert expected.value is not None
    assert [s.value for s in at.success] == [f"Prediction: {expected.value:,.6g} (body_mass_g)"]
    assert not at.get("vega_lite_chart")  # no class chart for a value
