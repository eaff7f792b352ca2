"""The Gradio demo, launched for real on a free loopback port and driven with gradio_client."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from app_prototype import presentation as ui
from app_prototype.gradio_app import Launched, build_demo, launch
from model.errors import ServiceUnavailable
from model.predictor import LocalPredictor, ModelInfo, Prediction
from model.schema import Record
from tests.helpers import BODY_MASS, GENTOO, declare_limits, free_port, gradio_client, http_get

SERVICE = "http://127.0.0.1:3411"


@pytest.fixture
def predictor(trained_home: Path) -> LocalPredictor:
    return LocalPredictor.from_home(trained_home)


@pytest.fixture
def app(predictor: LocalPredictor) -> Iterator[Launched]:
    launched = launch(predictor, host="127.0.0.1", port=free_port(), say=lambda _: None)
    try:
        yield launched
    finally:
        launched.demo.close()


def test_predicts_like_the_local_predictor(app: Launched, predictor: LocalPredictor) -> None:
    result = gradio_client(app.local_url).predict(**GENTOO, api_name="/predict")
    label, summary, raw = result
    expected = predictor.predict([GENTOO])[0]
    assert raw == expected.to_json()
    assert label["label"] == expected.label == "Gentoo"
    shown = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert shown == pytest.approx(expected.probabilities, abs=1e-12)
    assert "Gentoo" in summary and "v1" in summary


def test_optional_fields_may_be_empty(app: Launched) -> None:
    record = {**GENTOO, "bill_depth_mm": None, "sex": "(missing)"}
    _, summary, raw = gradio_client(app.local_url).predict(**record, api_name="/predict")
    assert raw["label"] in ("Adelie", "Chinstrap", "Gentoo")
    assert "Prediction:" in summary


def test_invalid_input_names_each_field(app: Launched) -> None:
    bad = {**GENTOO, "body_mass_g": 5400.5, "flipper_length_mm": 181.5}
    with pytest.raises(Exception, match="failed validation") as caught:
        gradio_client(app.local_url).predict(**bad, api_name="/predict")
    message = str(caught.value)
    assert "'body_mass_g' must be an integer, got 5400.5" in message
    assert "'flipper_length_mm' must be an integer, got 181.5" in message
    assert "island" not in message  # valid fields are not flagged


def test_a_value_outside_the_sample_range_is_predicted_with_a_warning(app: Launched) -> None:
    unusual = {**GENTOO, "bill_length_mm": 71}
    _, summary, raw = gradio_client(app.local_url).predict(**unusual, api_name="/predict")
    assert raw["label"] in ("Adelie", "Chinstrap", "Gentoo")
    expected = (
        "bill_length_mm 71 is outside the range seen in the sample (29–63): "
        "the model is extrapolating"
    )
    assert raw["warnings"] == [expected]
    assert "Prediction:" in summary and expected in summary


def test_a_declared_hard_limit_refuses_naming_the_field(kit_home: Path) -> None:
    declare_limits(kit_home)
    launched = launch(LocalPredictor.from_home(kit_home), port=free_port(), say=lambda _: None)
    try:
        with pytest.raises(Exception, match="failed validation") as caught:
            gradio_client(launched.local_url).predict(
                **{**GENTOO, "bill_length_mm": 612}, api_name="/predict"
            )
        assert "'bill_length_mm' must be a number between 10 and 100, got 612" in str(caught.value)
    finally:
        launched.demo.close()


def test_page_shows_model_name_version_and_widgets(app: Launched) -> None:
    status, config = http_get(app.local_url + "config")
    assert status == 200
    assert "penguins:v1" in config and "local: model in this process" in config
    for name in GENTOO:
        assert f'"in-{name}"' in config
    api = gradio_client(app.local_url).view_api(return_format="dict", print_info=False)
    params = [p["parameter_name"] for p in api["named_endpoints"]["/predict"]["parameters"]]
    assert params == list(GENTOO)


def test_auth_protects_page_data_and_api(predictor: LocalPredictor) -> None:
    password = secrets.token_urlsafe(12)
    launched = launch(predictor, port=free_port(), auth=("tester", password), say=lambda _: None)
    try:
        assert http_get(launched.local_url + "config")[0] == 401
        status, login_page = http_get(launched.local_url)  # the login, and nothing of the model
        assert status == 200 and "auth_required" in login_page
        assert not [name for name in [*GENTOO, "penguins", "Gentoo"] if name in login_page]
        with pytest.raises(Exception, match="credentials"):
            gradio_client(launched.local_url)
        with pytest.raises(ValueError, match="Could not login"):
            gradio_client(launched.local_url, auth=("tester", "wrong-" + password))
        client = gradio_client(launched.local_url, auth=("tester", password))
        assert client.predict(**GENTOO, api_name="/predict")[2]["label"] == "Gentoo"
    finally:
        launched.demo.close()


def test_a_regression_model_shows_a_value_read_only_and_rounded(regression_home: Path) -> None:
    """An imported regressor: the same generated UI answers with a number, not classes; the
    number is a result to read (not an input box), rounded to what the model can tell."""
    predictor = LocalPredictor.from_home(regression_home)
    launched = launch(predictor, port=free_port(), say=lambda _: None)
    try:
        record = BODY_MASS
        value, summary, raw = gradio_client(launched.local_url).predict(
            **record, api_name="/predict"
        )
        expected = predictor.predict([record])[0]
        assert raw == expected.to_json() and set(raw) == {"value", "model_version"}
        assert expected.value is not None
        assert 100 <= predictor.info().metrics["sample_mae"] < 1000  # tens of grams, then
        rounded = f"{round(expected.value, -1):,.0f} (body_mass_g)"
        assert value["label"] == rounded
        assert f"Prediction:** {rounded}" in summary
        config = json.loads(http_get(launched.local_url + "config")[1])
        assert "body-mass:v1" in json.dumps(config)
        [shown] = [c for c in config["components"] if c["props"].get("elem_id") == "out-value"]
        assert shown["type"] == "label"  # read-only text, not a number box
    finally:
        launched.demo.close()


class ServiceDown:
    """A remote Predictor whose service stopped answering."""

    def __init__(self, real: LocalPredictor) -> None:
        self.real = real

    def info(self) -> ModelInfo:
        return self.real.info().model_copy(update={"backend": f"remote: {SERVICE}"})

    def predict(self, records: Sequence[Record]) -> list[Prediction]:
        raise ServiceUnavailable(f"model service at {SERVICE} cannot be reached")


def test_the_owner_sees_the_services_url_and_what_to_run_when_it_is_down(
    predictor: LocalPredictor,
) -> None:
    """Served on loopback, not shared: whoever sees the page runs `kit demo` on this machine."""
    launched = launch(ServiceDown(predictor), port=free_port(), say=lambda _: None)
    try:
        config = http_get(launched.local_url + "config")[1]
        assert f"model service (penguins:v1) at {SERVICE}" in config
        with pytest.raises(Exception, match="Model service unavailable") as caught:
            gradio_client(launched.local_url).predict(**GENTOO, api_name="/predict")
        message = str(caught.value)
        assert f"model service at {SERVICE} cannot be reached" in message
        assert "`kit status`" in message and "`kit promote`" in message
    finally:
        launched.demo.close()


def test_testers_see_the_model_service_not_its_url(predictor: LocalPredictor) -> None:
    """A shared demo (a link, the LAN): the header names the service and its model only."""
    demo = build_demo(ServiceDown(predictor), show_service_url=False)
    config = json.dumps(demo.get_config_file(), default=str)
    assert "model service (penguins:v1)" in config
    assert SERVICE not in config


def test_examples_are_named_by_content_and_predicted_when_clicked(
    app: Launched, predictor: LocalPredictor
) -> None:
    config: dict[str, Any] = json.loads(http_get(app.local_url + "config")[1])
    names = ui.example_names(predictor.info().model_schema)
    [dataset] = [c for c in config["components"] if c["type"] == "dataset"]
    assert dataset["props"]["sample_labels"] == names
    by_id = {d["id"]: d for d in config["dependencies"]}
    clicked = [d for d in config["dependencies"] if [dataset["id"], "click"] in d["targets"]]
    assert clicked, "the examples load nothing"
    then = [d for d in by_id.values() if d.get("trigger_after") == clicked[0]["id"]]
    outputs = {o for d in then for o in d["outputs"]}
    [label] = [c["id"] for c in config["components"] if c["props"].get("elem_id") == "out-label"]
    assert label in outputs, "clicking an example does not predict it"
