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

from app_prototype import presentation as ui
from app_prototype.presentation import MISSING_CHOICE
from model.errors import ServiceUnavailable
from model.predictor import LocalPredictor, ModelInfo, Prediction, Predictor
from model.schema import ModelSchema, Record
from tests.helpers import DECLARED_LIMITS, ROOT, declare_limits
from tests.wide_model import FEATURES, make_cancer_home

APP = ROOT / "scripts" / "streamlit_page.py"  # what `kit demo --ui streamlit` runs
JSON_BUTTON = "Fill the form and predict"
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
    """The data behind the one probability chart (AppTest exposes it as a raw VegaLiteChart)."""
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1, f"expected one chart, found {len(charts)}"
    proto = charts[0].proto
    spec = json.loads(proto.spec)
    assert spec["mark"]["type"] == "bar"
    # Most likely class first: the data order is kept (Vega would sort classes by name).
    assert spec["encoding"]["y"].get("sort", "sorted by Vega") is None
    # The axis is 0-100 % whatever the answer: 69% must not fill the width.
    assert spec["encoding"]["x"]["scale"]["domain"] == [0, 1]
    assert spec["encoding"]["x"]["axis"]["format"] == ".0%"
    raw = proto.datasets[0].data.data if proto.datasets else proto.data.data
    table = pa.ipc.open_stream(io.BytesIO(raw)).read_all()
    probabilities = table["probability"].to_pylist()
    assert probabilities == sorted(probabilities, reverse=True)
    return dict(zip(table["class"].to_pylist(), probabilities, strict=True))


def version_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("answered by")]


def ui_summary(expected: Prediction, schema: ModelSchema, local: LocalPredictor) -> str:
    return f"Prediction: {ui.prediction_summary(expected, schema, local.info().metrics)}"


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
    assert version_captions(at) == [f"answered by model version {expected.model_version}"]
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
    assert button_labels(at) == ["Predict", JSON_BUTTON]
    assert [i.value for i in at.info] == ["Set the features and press Predict."]
    assert not at.success and not at.error


def test_descriptions_are_shown_inline_and_numbers_with_the_datas_decimals(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, schema: ModelSchema
) -> None:
    at = start_app(monkeypatch, trained_home)
    captions = [c.value for c in at.caption]
    for feature in schema.features:
        assert ui.help_text(feature) in captions, feature.name  # inline, like Gradio's info
        assert not widget_of(at, feature.name).help  # not hidden behind a "?"
    formats = {w.key: w.proto.format for w in at.number_input}
    assert formats == {
        "in_bill_length_mm": "%.2f",  # its default is 44.45
        "in_bill_depth_mm": "%.1f",
        "in_flipper_length_mm": "%d",
        "in_body_mass_g": "%d",
    }


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


def test_start_from_example_fills_the_widgets_and_predicts_it(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    assert len(schema.examples) >= 2
    at = start_app(monkeypatch, trained_home)
    names = ui.example_names(schema)
    assert at.selectbox(key="example").options == ["(defaults)", *names]
    assert names[0].startswith("Torgersen · male · bill_length_mm 39.1")  # named by content
    first = {f.name: schema.examples[0].get(f.name) for f in schema.features}
    assert first != schema.defaults()

    at.selectbox(key="example").select(names[0]).run()
    assert not at.exception
    assert widget_values(at, schema) == first
    assert_shows(at, local.predict([first])[0])  # picked, predicted: no Predict needed
    click(at, "Predict")
    assert_shows(at, local.predict([first])[0])

    at.selectbox(key="example").select(names[1]).run()
    second = {f.name: schema.examples[1].get(f.name) for f in schema.features}
    assert widget_values(at, schema) == second
    assert_shows(at, local.predict([second])[0])

    at.selectbox(key="example").select("(defaults)").run()
    assert widget_values(at, schema) == schema.defaults()
    assert_shows(at, local.predict([schema.defaults()])[0])


def test_a_record_pasted_as_json_fills_the_form_and_is_predicted(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    at = start_app(monkeypatch, trained_home)
    at.text_area(key="record_json").input(json.dumps(CHANGED))
    click(at, JSON_BUTTON)
    assert widget_values(at, schema) == CHANGED
    assert_shows(at, local.predict([CHANGED])[0])

    at.text_area(key="record_json").input('{"island": 3, "bill_length": 40}')
    click(at, JSON_BUTTON)
    [message] = [e.value for e in at.error]
    assert message.startswith("Invalid record:"), message
    assert "'island' must be a text" in message and "unknown field 'bill_length'" in message
    assert widget_values(at, schema) == CHANGED  # the form is left as it was
    expected = local.predict([CHANGED])[0]  # and so is the result: it is still theirs
    assert [s.value for s in at.success] == [ui_summary(expected, schema, local)]


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

    def __init__(self, real: LocalPredictor, backend: str = "local") -> None:
        self.real = real
        self.up = False
        self.calls: list[list[Record]] = []
        self.backend = backend

    def info(self) -> ModelInfo:
        return self.real.info().model_copy(update={"backend": self.backend})

    def predict(self, records: Sequence[Record]) -> list[Prediction]:
        self.calls.append(list(records))
        if not self.up:
            raise ServiceUnavailable("connection refused")
        return self.real.predict(records)


def served_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """As `kit demo` serves the page without sharing it (`--server.address 127.0.0.1`)."""
    get_option = st.get_option
    monkeypatch.setattr(
        st, "get_option", lambda key: "127.0.0.1" if key == "server.address" else get_option(key)
    )


def test_service_unavailable_keeps_the_ui_up_and_it_recovers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, local: LocalPredictor, schema: ModelSchema
) -> None:
    served_on_loopback(monkeypatch)  # the owner's view: the reason, and what to run
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
    assert messages[0].startswith("Model service unavailable: connection refused")
    assert "`kit status`" in messages[0] and "`kit promote`" in messages[0]
    assert not at.success
    assert not at.exception
    assert "Predict" in button_labels(at)  # the form is still there

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
    assert button_labels(at) == ["Predict", JSON_BUTTON]
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


def test_a_regression_model_shows_a_value_rounded_to_the_models_error(
    monkeypatch: pytest.MonkeyPatch, regression_home: Path
) -> None:
    local = LocalPredictor.from_home(regression_home)
    at = start_app(monkeypatch, regression_home)
    assert "body-mass:v1" in " ".join(m.value for m in at.markdown)
    click(at, "Predict")
    expected = local.predict([local.schema.defaults()])[0]
    assert expected.value is not None
    mae = local.info().metrics["sample_mae"]
    assert 100 <= mae < 1000  # so the model cannot tell values closer than about 10 g
    rounded = f"{round(expected.value, -1):,.0f}"
    assert [s.value for s in at.success] == [f"Prediction: {rounded} (body_mass_g)"]
    assert not at.get("vega_lite_chart")  # no class chart for a value
    assert json.loads(at.json[0].value)["value"] == expected.value  # the raw JSON is exact


def test_the_header_names_the_service_for_testers_and_its_url_for_the_owner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, local: LocalPredictor
) -> None:
    url = "http://127.0.0.1:3411"
    fake = FlakyPredictor(local, backend=f"remote: {url}")
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state["predictor"] = fake
    at.run()
    assert "Backend: **model service (penguins:v1)**" in at.markdown[0].value
    click(at, "Predict")
    [message] = [e.value for e in at.error]
    assert url not in message and "connection refused" not in message
    assert "owner" in message and "`kit status`" in message and "`kit promote`" in message

    served_on_loopback(monkeypatch)  # `kit demo` without --share: whoever sees it is the owner
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state["predictor"] = fake
    at.run()
    assert f"Backend: **model service (penguins:v1) at {url}**" in at.markdown[0].value


@pytest.fixture(scope="module")
def cancer_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cancer_home(tmp_path_factory.mktemp("cancer"))


def test_a_wide_model_lays_its_features_out_in_a_grid_next_to_the_result(
    monkeypatch: pytest.MonkeyPatch, cancer_home: Path
) -> None:
    local = LocalPredictor.from_home(cancer_home)
    schema = local.info().model_schema
    assert len(schema.features) == FEATURES
    at = start_app(monkeypatch, cancer_home)
    assert len(at.number_input) == FEATURES

    [scrolled] = _blocks_with_height(at)  # the features scroll; Predict and the result stay
    assert len(scrolled.number_input) == FEATURES
    grid = [c for c in at.columns if 0 < len(c.number_input) < FEATURES]  # rows of 3 cells
    assert [len(cell.number_input) for cell in grid] == [1] * FEATURES
    assert all(cell.weight == pytest.approx(1 / 3) for cell in grid)

    formats = {w.label: w.proto.format for w in at.number_input}
    assert formats["mean smoothness"] == "%.5f"  # 0.09432: not "0.09"
    assert formats["mean area"] == "%.2f"

    record = schema.examples[0]
    at.text_area(key="record_json").input(json.dumps(record))
    click(at, JSON_BUTTON)
    expected = local.predict([record])[0]
    assert expected.label == "0" and expected.probabilities is not None
    assert [s.value for s in at.success] == [
        f"Prediction: malignant (0) ({expected.probabilities['0']:.1%})"
    ]


def _blocks_with_height(at: AppTest) -> list[Any]:
    """Containers with a fixed height (they scroll their content)."""
    found = []

    def walk(node: Any) -> None:
        for child in getattr(node, "children", {}).values():
            proto = getattr(child, "proto", None)
            fields = proto.DESCRIPTOR.fields_by_name if proto is not None else {}
            if "height_config" in fields and proto.height_config.HasField("pixel_height"):
                found.append(child)
            walk(child)

    walk(at.main)
    return found
