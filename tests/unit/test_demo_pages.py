"""What the demo pages show (issue 12), written once in `app_prototype.presentation`."""

from __future__ import annotations

import pytest

from app_prototype import presentation as ui
from app_prototype.sharing import only_this_machine
from model.errors import InvalidInput, ServiceUnavailable
from model.predictor import ModelInfo, Prediction
from model.schema import Feature, ModelSchema

PENGUINS = ModelSchema(
    task="classification",
    classes=["Adelie", "Gentoo"],
    features=[
        Feature(name="island", kind="category", choices=["Biscoe", "Dream"], default="Biscoe"),
        Feature(name="bill_length_mm", kind="number", default=44.45, required=False),
        Feature(name="body_mass_g", kind="integer", default=4050),
        Feature(name="sex", kind="category", choices=["female", "male"], required=False),
        Feature(name="smoothness", kind="number", default=0.1, unit="mm"),
    ],
    examples=[
        {
            "island": "Dream",
            "bill_length_mm": 39.1,
            "body_mass_g": 3750,
            "sex": "male",
            "smoothness": 0.1184,
        },
        {
            "island": "Biscoe",
            "bill_length_mm": None,
            "body_mass_g": 5400,
            "sex": None,
            "smoothness": 0.08,
        },
    ],
)
REGRESSION = ModelSchema(
    task="regression",
    target="body_mass_g",
    features=[Feature(name="flipper_length_mm", kind="integer", default=197)],
)
URL = "http://127.0.0.1:3411"


def remote(schema: ModelSchema = PENGUINS) -> ModelInfo:
    return ModelInfo(name="penguins", version="v1", model_schema=schema, backend=f"remote: {URL}")


# -- regression: a value rounded to what the model can tell, with its unit ---------------------


def test_a_value_is_rounded_to_the_models_error_when_it_is_known() -> None:
    value = Prediction(value=3809.5201583340527, model_version="v1")
    assert ui.format_value(3809.5201583340527, mae=280.0) == "3,810"  # tens: the MAE is 280
    assert ui.format_value(3809.5201583340527, mae=0.34) == "3,809.52"
    assert ui.format_value(3809.5201583340527) == "3,810"  # four significant digits
    assert ui.format_value(0.0123456) == "0.01235"
    assert ui.format_value(-12.3456) == "-12.35"
    assert ui.format_value(123456.7) == "123,457"  # integer digits are never rounded away
    assert ui.format_value(0.0) == "0"
    summary = ui.prediction_summary(value, REGRESSION, metrics={"sample_mae": 280.0})
    assert summary == "3,810 (body_mass_g)"
    assert ui.prediction_summary(value, REGRESSION) == "3,810 (body_mass_g)"


# -- the backend: the service's URL for the owner only -----------------------------------------


def test_testers_see_the_model_service_and_the_owner_its_url() -> None:
    assert ui.backend_text(remote()) == "model service (penguins:v1)"
    assert ui.backend_text(remote(), show_url=True) == f"model service (penguins:v1) at {URL}"
    assert URL not in ui.header_markdown(remote())
    assert f"Backend: **model service (penguins:v1) at {URL}**" in ui.header_markdown(
        remote(), show_url=True
    )
    local = remote().model_copy(update={"backend": "local"})
    assert ui.backend_text(local) == ui.backend_text(local, show_url=True)
    assert ui.backend_text(local) == "local: model in this process"


def test_only_a_demo_bound_to_loopback_and_not_shared_counts_as_the_owners() -> None:
    assert only_this_machine("127.0.0.1", share=False)
    assert only_this_machine("localhost", share=False)
    assert not only_this_machine("127.0.0.1", share=True)  # a share link: testers
    assert not only_this_machine("0.0.0.0", share=False)  # the LAN: testers
    assert not only_this_machine("192.168.1.20", share=False)


def test_service_unavailable_says_what_the_owner_can_do() -> None:
    error = ServiceUnavailable(f"model service at {URL} cannot be reached")
    owner = ui.unavailable_message(error, show_url=True)
    assert owner.startswith(f"Model service unavailable: model service at {URL} cannot be reached")
    assert "`kit status`" in owner and "`kit promote`" in owner
    tester = ui.unavailable_message(error, show_url=False)
    assert tester.startswith("Model service unavailable")
    assert URL not in tester
    assert "owner" in tester and "`kit status`" in tester and "`kit promote`" in tester


# -- the form ---------------------------------------------------------------------------------


def test_the_attention_summary_names_the_fields() -> None:
    assert ui.attention_text([]) == ""
    assert ui.attention_text(["body_mass_g"]) == "⚠️ 1 field needs attention: body_mass_g"
    assert ui.attention_text(["bill_length_mm", "body_mass_g"]) == (
        "⚠️ 2 fields need attention: bill_length_mm, body_mass_g"
    )


def test_examples_are_named_by_their_content() -> None:
    first, second = ui.example_names(PENGUINS)
    assert first.startswith("Dream · male · bill_length_mm 39.1 · body_mass_g 3750")
    assert second.startswith("Biscoe · body_mass_g 5400")  # missing values are left out
    assert len(first) <= ui.EXAMPLE_NAME_LENGTH + 2 and first.endswith(" …")
    twins = PENGUINS.model_copy(update={"examples": [PENGUINS.examples[0]] * 2})
    assert ui.example_names(twins)[1].endswith("(2)")
    # What all examples share does not tell them apart: left out.
    same_island = [{**e, "island": "Dream"} for e in PENGUINS.examples]
    names = ui.example_names(PENGUINS.model_copy(update={"examples": same_island}))
    assert names[1].startswith("body_mass_g 5400 · smoothness 0.08 mm")


def test_numbers_are_shown_with_the_decimals_of_the_data() -> None:
    assert ui.decimals(PENGUINS.feature("body_mass_g"), PENGUINS) == 0
    assert ui.decimals(PENGUINS.feature("bill_length_mm"), PENGUINS) == 2  # default 44.45
    assert ui.decimals(PENGUINS.feature("smoothness"), PENGUINS) == 4  # example 0.1184
    whole = Feature(name="flipper", kind="number", default=181.0)
    assert ui.decimals(whole, REGRESSION) == 1  # a number, not an integer: one decimal at least


def test_many_features_are_laid_out_in_a_grid() -> None:
    assert ui.grid_columns(PENGUINS) == 2  # five features: two columns
    few = PENGUINS.model_copy(update={"features": PENGUINS.features[:3], "examples": []})
    assert ui.grid_columns(few) == 1
    assert not ui.is_wide(PENGUINS)
    many = ModelSchema(
        task="regression",
        features=[Feature(name=f"x{i}", kind="number") for i in range(30)],
    )
    assert ui.grid_columns(many) == 3 and ui.is_wide(many)


def test_a_pasted_record_becomes_widget_values_or_a_clear_error() -> None:
    values = ui.values_from_json(
        PENGUINS,
        '{"island": "Dream", "bill_length_mm": 39.1, "body_mass_g": 3750, "smoothness": 0.1}',
    )
    assert values == ["Dream", 39.1, 3750, ui.MISSING_CHOICE, 0.1]  # absent optional: missing
    with pytest.raises(ValueError, match="not valid JSON"):
        ui.values_from_json(PENGUINS, "{island: Dream}")
    with pytest.raises(ValueError, match="a JSON object keyed by feature name"):
        ui.values_from_json(PENGUINS, "[1, 2]")
    with pytest.raises(InvalidInput) as caught:
        ui.values_from_json(PENGUINS, '{"island": "Mars", "body_mass": 1, "smoothness": 0.1}')
    message = str(caught.value)
    assert "'island' must be one of" in message and "unknown field 'body_mass'" in message
    assert "'body_mass_g' is missing" in message
