"""What both UIs show: class display names, warnings, the header's honest metrics."""

from __future__ import annotations

from app_prototype import presentation as ui
from model.predictor import ModelInfo, Prediction
from model.schema import Feature, ModelSchema

SCHEMA = ModelSchema(
    task="classification",
    classes=["0", "1"],
    class_names={"0": "malignant", "1": "benign"},
    title="Breast cancer (Wisconsin)",
    description="Is a breast mass malignant?",
    features=[
        Feature(
            name="mean radius",
            kind="number",
            minimum=0,
            expected_min=6,
            expected_max=29,
            description="Mean distance from the center to the perimeter",
            unit="mm",
        )
    ],
)
PREDICTION = Prediction(
    label="0",
    probabilities={"0": 0.9, "1": 0.1},
    model_version="v2",
    warnings=["mean radius 40 is outside the range seen in the sample (6–29): extrapolating"],
)


def info(metrics: dict[str, float]) -> ModelInfo:
    return ModelInfo(name="cancer", version="v2", model_schema=SCHEMA, metrics=metrics)


def test_classes_are_shown_by_their_names_with_the_label_kept() -> None:
    assert ui.prediction_summary(PREDICTION, SCHEMA) == "malignant (0) (90.0%)"
    assert ui.shown_probabilities(PREDICTION, SCHEMA) == {"malignant (0)": 0.9, "benign (1)": 0.1}
    assert ui.probabilities_sorted(PREDICTION, SCHEMA)[0] == ("malignant (0)", 0.9)
    unnamed = SCHEMA.model_copy(update={"class_names": {}})
    assert ui.prediction_summary(PREDICTION, unnamed) == "0 (90.0%)"


def test_warnings_are_one_line_each_and_nothing_when_there_are_none() -> None:
    assert ui.warnings_markdown(PREDICTION) == f"⚠️ {PREDICTION.warnings[0]}"
    assert ui.warnings_markdown(PREDICTION.model_copy(update={"warnings": None})) == ""


def test_help_text_gives_the_description_unit_limit_and_expected_range() -> None:
    text = ui.help_text(SCHEMA.features[0])
    assert text == (
        "Mean distance from the center to the perimeter · unit: mm · a number >= 0 · "
        "usually 6–29 (the sample's range)"
    )


def test_the_header_says_what_the_metrics_were_measured_on() -> None:
    sample = ui.header_markdown(info({"sample_accuracy": 0.97, "n_sample": 60}))
    assert sample.startswith("### Breast cancer (Wisconsin) · classification")
    assert "Model `cancer:v2`" in sample and "Is a breast mass malignant?" in sample
    assert "accuracy 0.970 (on the import sample, which may include training rows)" in sample
    held_out = ui.header_markdown(info({"holdout_accuracy": 0.95, "sample_accuracy": 0.99}))
    assert "accuracy 0.950 (held-out data)" in held_out and "0.990" not in held_out
    assert "metrics" not in ui.header_markdown(info({}))
