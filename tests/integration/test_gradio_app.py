"""The Gradio demo, launched for real on a free loopback port and driven with gradio_client."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from app_prototype.gradio_app import Launched, launch
from model.predictor import LocalPredictor
from tests.helpers import GENTOO, declare_limits, free_port, http_get


def _client(url: str, **kwargs: object) -> Client:
    return Client(url, analytics_enabled=False, verbose=False, **kwargs)  # type: ignore[arg-type]


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
    result = _client(app.local_url).predict(**GENTOO, api_name="/predict")
    label, summary, raw = result
    expected = predictor.predict([GENTOO])[0]
    assert raw == expected.to_json()
    assert label["label"] == expected.label == "Gentoo"
    shown = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert shown == pytest.approx(expected.probabilities, abs=1e-12)
    assert "Gentoo" in summary and "v1" in summary


def test_optional_fields_may_be_empty(app: Launched) -> None:
    record = {**GENTOO, "bill_depth_mm": None, "sex": "(missing)"}
    _, summary, raw = _client(app.local_url).predict(**record, api_name="/predict")
    assert raw["label"] in ("Adelie", "Chinstrap", "Gentoo")
    assert "Prediction:" in summary


def test_invalid_input_names_each_field(app: Launched) -> None:
    bad = {**GENTOO, "body_mass_g": 5400.5, "flipper_length_mm": 181.5}
    with pytest.raises(Exception, match="failed validation") as caught:
        _client(app.local_url).predict(**bad, api_name="/predict")
    message = str(caught.value)
    assert "'body_mass_g' must be an integer, got 5400.5" in message
    assert "'flipper_length_mm' must be an integer, got 181.5" in message
    assert "island" not in message  # valid fields are not flagged


def test_a_value_outside_the_sample_range_is_predicted_with_a_warning(app: Launched) -> None:
    unusual = {**GENTOO, "bill_length_mm": 71}
    _, summary, raw = _client(app.local_url).predict(**unusual, api_name="/predict")
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
            _client(launched.local_url).predict(
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
    api = _client(app.local_url).view_api(return_format="dict", print_info=False)
    params = [p["parameter_name"] for p in api["named_endpoints"]["/predict"]["parameters"]]
    assert params == list(GENTOO)


def test_auth_protects_page_data_and_api(predictor: LocalPredictor) -> None:
    password = secrets.token_urlsafe(12)
    launched = launch(predictor, port=free_port(), auth=("tester", password), say=lambda _: None)
    try:
        assert http_get(launched.local_url + "config")[0] == 401
        with pytest.raises(Exception, match="credentials"):
            _client(launched.local_url)
        with pytest.raises(ValueError, match="Could not login"):
            _client(launched.local_url, auth=("tester", "wrong-" + password))
        client = _client(launched.local_url, auth=("tester", password))
        assert client.predict(**GENTOO, api_name="/predict")[2]["label"] == "Gentoo"
    finally:
        launched.demo.close()


def test_a_regression_model_shows_a_value(regression_home: Path) -> None:
    """An imported regressor: the same generated UI answers with a number, not classes."""
    predictor = LocalPredictor.from_home(regression_home)
    launched = launch(predictor, port=free_port(), say=lambda _: None)
    try:
        record = {
            "species": "Gentoo",
            "island": "Biscoe",
            "sex": "male",
            "bill_length_mm": 47.5,
            "bill_depth_mm": 15.0,
            "flipper_length_mm": 217.0,
        }
        value, summary, raw = _client(launched.local_url).predict(**record, api_name="/predict")
        expected = predictor.predict([record])[0]
        assert raw == expected.to_json() and set(raw) == {"value", "model_version"}
        assert value == pytest.approx(expected.value)
        assert "body_mass_g" in summary
        assert "body-mass:v1" in http_get(launched.local_url + "config")[1]
    finally:
        launched.demo.close()
