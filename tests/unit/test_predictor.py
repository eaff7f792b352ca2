"""`LocalPredictor` on the trained example: contract shape, validation first, parity, behaviour."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import SVC

from model.artifact import Manifest, ModelStore
from model.errors import InvalidInput
from model.inference import infer_schema
from model.predictor import (
    LocalPredictor,
    ModelInfo,
    Prediction,
    Predictor,
    records_to_frame,
    same_predictions,
)
from model.train import FEATURES, load_example_data

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
GENTOO_LIKE = {
    "island": "Biscoe",
    "bill_length_mm": 47.5,
    "bill_depth_mm": 15.0,
    "flipper_length_mm": 217,
    "body_mass_g": 5400,
    "sex": "male",
}
ADELIE_LIKE = {
    "island": "Torgersen",
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181,
    "body_mass_g": 3750,
    "sex": "male",
}


class SpyEstimator:
    """Stands in for the pipeline: records any call, so a test can prove it was not called."""

    classes_ = np.array(CLASSES)

    def __init__(self) -> None:
        self.calls: list[str] = []

    def predict(self, frame: Any) -> Any:
        self.calls.append("predict")
        return np.array(["Adelie"] * len(frame))

    def predict_proba(self, frame: Any) -> Any:
        self.calls.append("predict_proba")
        return np.tile([1.0, 0.0, 0.0], (len(frame), 1))


@pytest.fixture
def predictor(example_predictor: LocalPredictor) -> LocalPredictor:
    return example_predictor


def data_records(data: pd.DataFrame, predictor: LocalPredictor) -> list[dict[str, Any]]:
    """Rows of the training data as JSON-like records (None for missing, ints for integers)."""
    records = []
    for row in data[FEATURES].to_dict(orient="records"):
        record: dict[str, Any] = {}
        for feature in predictor.schema.features:
            value = row[feature.name]
            if pd.isna(value):
                record[feature.name] = None
            elif feature.kind == "integer":
                record[feature.name] = int(value)
            elif feature.kind == "number":
                record[feature.name] = float(value)
            else:
                record[feature.name] = str(value)
        records.append(record)
    return records


# --- info ------------------------------------------------------------------------------------


def test_info(predictor: LocalPredictor, example_manifest: Manifest) -> None:
    info = predictor.info()
    assert isinstance(info, ModelInfo)
    assert info.name == "penguins"
    assert info.version == "v1"
    assert info.title == "penguins:v1"
    assert info.backend == "local"
    assert info.model_schema == example_manifest.schema_
    assert info.model_schema.classes == CLASSES
    assert info.sha256 == example_manifest.sha256
    assert info.metrics == example_manifest.metrics


def test_local_predictor_satisfies_the_protocol(predictor: LocalPredictor) -> None:
    assert isinstance(predictor, Predictor)


# --- predictions -----------------------------------------------------------------------------


def test_predictions_on_schema_examples(predictor: LocalPredictor) -> None:
    examples = predictor.schema.examples
    assert examples
    predictions = predictor.predict(examples)
    assert len(predictions) == len(examples)
    for prediction in predictions:
        assert prediction.label in CLASSES
        assert prediction.probabilities is not None
        assert list(prediction.probabilities) == CLASSES
        assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-9)
        assert all(0.0 <= p <= 1.0 for p in prediction.probabilities.values())
        assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
        assert prediction.value is None
        assert prediction.model_version == "v1"


def test_prediction_json_shape(predictor: LocalPredictor) -> None:
    [prediction] = predictor.predict([GENTOO_LIKE])
    data = prediction.to_json()
    assert set(data) == {"label", "probabilities", "model_version"}
    assert isinstance(data["label"], str)
    assert set(data["probabilities"]) == set(CLASSES)
    assert all(type(p) is float for p in data["probabilities"].values())
    assert data["model_version"] == "v1"


def test_optional_fields_set_to_none_still_predict(predictor: LocalPredictor) -> None:
    optional = [f.name for f in predictor.schema.features if not f.required]
    assert optional  # the example has optional features (penguins with missing measurements)
    record = {**GENTOO_LIKE, **dict.fromkeys(optional)}
    [prediction] = predictor.predict([record])
    assert prediction.label in CLASSES
    assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-9)


def test_optional_fields_omitted_still_predict(predictor: LocalPredictor) -> None:
    required = {f.name for f in predictor.schema.features if f.required}
    record = {k: v for k, v in ADELIE_LIKE.items() if k in required}
    assert len(record) < len(ADELIE_LIKE)
    [omitted] = predictor.predict([record])
    [as_none] = predictor.predict([{**dict.fromkeys(ADELIE_LIKE), **record}])
    assert omitted.label in CLASSES
    assert same_predictions(omitted, as_none)


def test_predictions_keep_the_order_of_records(predictor: LocalPredictor) -> None:
    both = predictor.predict([GENTOO_LIKE, ADELIE_LIKE, GENTOO_LIKE])
    assert [p.label for p in both] == ["Gentoo", "Adelie", "Gentoo"]
    assert same_predictions(both[0], both[2])
    assert same_predictions(both[0], predictor.predict([GENTOO_LIKE])[0])


def test_empty_list_gives_empty_list(predictor: LocalPredictor) -> None:
    assert predictor.predict([]) == []


@pytest.mark.parametrize(
    "records",
    [
        [{**GENTOO_LIKE, "bill_length_mm": "47.5"}],
        [{**GENTOO_LIKE, "species": "Gentoo"}],
        [{k: v for k, v in GENTOO_LIKE.items() if k != "island"}],
        [{**GENTOO_LIKE, "flipper_length_mm": 217.5}],
        [{**GENTOO_LIKE, "body_mass_g": float("nan")}],
        [GENTOO_LIKE, {**ADELIE_LIKE, "bill_depth_mm": "deep"}],
        ["not a record"],
    ],
)
def test_invalid_input_is_refused_before_the_estimator_is_called(
    predictor: LocalPredictor, monkeypatch: pytest.MonkeyPatch, records: list[Any]
) -> None:
    spy = SpyEstimator()
    monkeypatch.setattr(predictor, "estimator", spy)
    with pytest.raises(InvalidInput) as info:
        predictor.predict(records)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].record == len(records) - 1
    assert spy.calls == []


def test_the_spy_would_notice_a_call(
    predictor: LocalPredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SpyEstimator()
    monkeypatch.setattr(predictor, "estimator", spy)
    [prediction] = predictor.predict([GENTOO_LIKE])
    assert spy.calls == ["predict_proba"]
    assert prediction.label == "Adelie"  # the spy's answer, not the model's


def test_parity_with_the_pipeline_on_examples(predictor: LocalPredictor) -> None:
    examples = predictor.schema.examples
    expected = predictor.estimator.predict_proba(pd.DataFrame(examples)[FEATURES])
    predictions = predictor.predict(examples)
    for prediction, row in zip(predictions, expected, strict=True):
        assert prediction.probabilities is not None
        assert list(prediction.probabilities.values()) == pytest.approx(list(row), abs=1e-12)


def test_parity_with_the_pipeline_on_training_rows_with_missing_values(
    predictor: LocalPredictor,
) -> None:
    data = load_example_data().head(60)
    assert data[FEATURES].isna().any().any()  # the rows include missing measurements and sex
    expected_proba = predictor.estimator.predict_proba(data[FEATURES])
    expected_labels = [str(v) for v in predictor.estimator.predict(data[FEATURES])]
    predictions = predictor.predict(data_records(data, predictor))
    assert [p.label for p in predictions] == expected_labels
    for prediction, row in zip(predictions, expected_proba, strict=True):
        assert prediction.probabilities is not None
        assert list(prediction.probabilities.values()) == pytest.approx(list(row), abs=1e-12)


# --- model behaviour (Made-With-ML style) ----------------------------------------------------


def test_gentoo_like_record_is_a_gentoo(predictor: LocalPredictor) -> None:
    [prediction] = predictor.predict([GENTOO_LIKE])
    assert prediction.label == "Gentoo"
    assert prediction.probabilities is not None
    assert prediction.probabilities["Gentoo"] > 0.5


def test_adelie_like_record_is_an_adelie(predictor: LocalPredictor) -> None:
    [prediction] = predictor.predict([ADELIE_LIKE])
    assert prediction.label == "Adelie"
    assert prediction.probabilities is not None
    assert prediction.probabilities["Adelie"] > 0.5


@pytest.mark.parametrize(("record", "species"), [(GENTOO_LIKE, "Gentoo"), (ADELIE_LIKE, "Adelie")])
def test_sex_alone_does_not_change_the_species(
    predictor: LocalPredictor, record: dict[str, Any], species: str
) -> None:
    variants = [{**record, "sex": sex} for sex in ("male", "female", None)]
    labels = [p.label for p in predictor.predict(variants)]
    assert labels == [species] * 3


# --- same_predictions ------------------------------------------------------------------------


def _classification(probabilities: dict[str, float], version: str = "v1") -> Prediction:
    label = max(probabilities, key=lambda k: probabilities[k])
    return Prediction(label=label, probabilities=probabilities, model_version=version)


def test_same_predictions_true_cases(predictor: LocalPredictor) -> None:
    a = _classification({"Adelie": 0.7, "Gentoo": 0.3})
    assert same_predictions(a, a)
    assert same_predictions(a, _classification({"Adelie": 0.7 + 1e-12, "Gentoo": 0.3 - 1e-12}))
    assert same_predictions(a, _classification({"Adelie": 0.7001, "Gentoo": 0.2999}), 1e-3)
    [first] = predictor.predict([ADELIE_LIKE])
    [second] = predictor.predict([ADELIE_LIKE])
    assert same_predictions(first, second)
    r = Prediction(value=3.0, model_version="v1")
    assert same_predictions(r, Prediction(value=3.0 + 1e-12, model_version="v1"))


def test_same_predictions_false_cases() -> None:
    a = _classification({"Adelie": 0.7, "Gentoo": 0.3})
    assert not same_predictions(a, _classification({"Adelie": 0.7001, "Gentoo": 0.2999}))
    assert not same_predictions(a, _classification({"Adelie": 0.3, "Gentoo": 0.7}))  # label
    assert not same_predictions(a, _classification({"Adelie": 0.7, "Chinstrap": 0.3}))  # keys
    assert not same_predictions(
        a, _classification({"Adelie": 0.7, "Gentoo": 0.3, "Chinstrap": 0.0})
    )
    r = Prediction(value=3.0, model_version="v1")
    assert not same_predictions(r, Prediction(value=3.001, model_version="v1"))
    assert not same_predictions(r, a)
    assert not same_predictions(a, r)


# --- other estimators ------------------------------------------------------------------------


def test_regression_prediction_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.uniform(0, 10, 40), "b": rng.uniform(-5, 5, 40)})
    frame.loc[[3, 17], "b"] = np.nan
    frame["y"] = 2.0 * frame["a"] - frame["b"].fillna(0) + 1.0
    pipe = make_pipeline(SimpleImputer(strategy="mean"), LinearRegression())
    pipe.fit(frame[["a", "b"]], frame["y"])
    store = ModelStore(tmp_path)
    schema = infer_schema(frame, task="regression", target="y")
    store.save(name="linear", schema=schema, metrics={}, source="test", estimator=pipe)

    predictor = LocalPredictor.from_home(tmp_path)
    assert predictor.info().model_schema.task == "regression"
    predictions = predictor.predict([*schema.examples, {"a": 5.0, "b": None}])
    expected = pipe.predict(pd.DataFrame([*schema.examples, {"a": 5.0, "b": np.nan}]))
    for prediction, value in zip(predictions, expected, strict=True):
        data = prediction.to_json()
        assert set(data) == {"value", "model_version"}
        assert type(data["value"]) is float
        assert data["model_version"] == "v1"
        assert data["value"] == pytest.approx(float(value), abs=1e-9)


def test_classifier_without_predict_proba_gives_certain_probabilities(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"x": [0.0, 0.2, 0.4, 0.6, 5.0, 5.2, 5.4, 5.6], "y": ["lo"] * 4 + ["hi"] * 4}
    )
    pipe = Pipeline([("svc", SVC())]).fit(frame[["x"]], frame["y"])
    assert not hasattr(pipe, "predict_proba")
    store = ModelStore(tmp_path)
    schema = infer_schema(frame, task="classification", target="y", classes=["hi", "lo"])
    store.save(name="svc", schema=schema, metrics={}, source="test", estimator=pipe)
    predictor = LocalPredictor.from_home(tmp_path)
    low, high = predictor.predict([{"x": 0.1}, {"x": 5.5}])
    assert low.label == "lo" and low.probabilities == {"hi": 0.0, "lo": 1.0}
    assert high.label == "hi" and high.probabilities == {"hi": 1.0, "lo": 0.0}


def test_records_to_frame_columns_and_types(predictor: LocalPredictor) -> None:
    schema = predictor.schema
    records = schema.validate_records([GENTOO_LIKE, {"island": "Dream"}])
    frame = records_to_frame(schema, records)
    assert list(frame.columns) == schema.feature_names
    assert frame["bill_length_mm"].dtype == float
    assert frame["flipper_length_mm"].dtype == float
    assert frame.loc[0, "island"] == "Biscoe"
    assert pd.isna(frame.loc[1, "bill_length_mm"])
    assert pd.isna(frame.loc[1, "sex"])


def test_a_value_outside_the_sample_range_is_predicted_with_a_warning(
    predictor: LocalPredictor,
) -> None:
    feature = predictor.schema.feature("bill_length_mm")
    assert feature.minimum is None and feature.expected_max is not None
    far = feature.expected_max + 8
    [usual, unusual] = predictor.predict([GENTOO_LIKE, {**GENTOO_LIKE, "bill_length_mm": far}])
    assert usual.warnings is None and "warnings" not in usual.to_json(), "absent when empty"
    assert unusual.label is not None and unusual.probabilities
    assert unusual.warnings == [
        f"bill_length_mm {far:g} is outside the range seen in the sample "
        f"({feature.expected_range()}): the model is extrapolating"
    ]
    assert not same_predictions(usual, unusual)


def test_an_island_the_encoder_never_saw_is_predicted_with_a_warning(
    predictor: LocalPredictor,
) -> None:
    # The example pipeline one-hot encodes with handle_unknown="ignore": it can take it.
    assert predictor.schema.feature("island").allow_unknown
    [prediction] = predictor.predict([{**GENTOO_LIKE, "island": "Anvers"}])
    assert prediction.label in (predictor.schema.classes or [])
    assert prediction.warnings is not None and len(prediction.warnings) == 1
    assert prediction.warnings[0].startswith("island 'Anvers' is not a category the model was")


def test_an_answer_that_is_not_a_number_is_refused_naming_the_fields(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    from model.artifact import ModelStore
    from model.inference import infer_schema

    frame = pd.DataFrame({"a": np.linspace(0, 1, 20), "b": np.linspace(5, 6, 20)})
    model = Ridge().fit(frame, frame["a"] * 1e5)
    store = ModelStore(tmp_path)
    schema = infer_schema(frame, task="regression")
    store.save(name="ridge", schema=schema, metrics={}, source="train", estimator=model)
    ridge = LocalPredictor.from_home(tmp_path)
    [far] = ridge.predict([{"a": 1e6, "b": 5.5}])  # extrapolated, still a number
    assert far.value is not None and far.warnings
    with pytest.raises(InvalidInput) as caught:
        ridge.predict([{"a": 0.5, "b": 5.5}, {"a": 1e308, "b": 5.5}])
    [error] = caught.value.errors
    assert (error.record, error.field, error.received) == (1, "a", 1e308)
    assert "a value the model can compute with (it returned infinity or NaN" in error.message
    assert "the sample's range is 0–1.1" in error.message
