"""Testers' feedback: checked like a request (every bad field named), kept in a real SQLite
file, summarised per version."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from model.errors import InvalidInput
from model.feedback import Feedback, FeedbackStore, check_feedback, summarise
from model.predictor import LocalPredictor
from model.schema import ModelSchema
from tests.helpers import GENTOO


@pytest.fixture
def schema(example_predictor: LocalPredictor) -> ModelSchema:
    return example_predictor.info().model_schema


def body(example_predictor: LocalPredictor, **changes: Any) -> dict[str, Any]:
    prediction = example_predictor.predict([GENTOO])[0].to_json()
    return {"record": GENTOO, "prediction": prediction, "correct": "Adelie", **changes}


def test_a_correction_is_checked_and_completed(
    example_predictor: LocalPredictor, schema: ModelSchema
) -> None:
    feedback = check_feedback(schema, "penguins", body(example_predictor, comment=" a tall one "))
    assert (feedback.model, feedback.version, feedback.correct) == ("penguins", "v1", "Adelie")
    assert feedback.record == schema.complete(GENTOO) and feedback.comment == "a tall one"
    assert feedback.predicted == "Gentoo" and feedback.wrong
    confirmed = check_feedback(schema, "penguins", body(example_predictor, correct="Gentoo"))
    assert not confirmed.wrong  # a tester may confirm a prediction too


def test_every_bad_field_is_named_with_what_was_expected_and_received(
    example_predictor: LocalPredictor, schema: ModelSchema
) -> None:
    bad = body(example_predictor, correct="Emperor", comment=7)
    bad["record"] = {**GENTOO, "body_mass_g": "heavy"}
    bad["prediction"] = {"label": "Gentoo"}  # no model_version
    with pytest.raises(InvalidInput) as refused:
        check_feedback(schema, "penguins", bad)
    messages = {e.field: e.message for e in refused.value.errors}
    assert set(messages) == {"body_mass_g", "prediction", "correct", "comment"}
    assert "Adelie, Chinstrap, Gentoo" in messages["correct"]
    assert "'Emperor'" in messages["correct"]
    missing = {"prediction": body(example_predictor)["prediction"], "correct": "Adelie"}
    with pytest.raises(InvalidInput, match="record"):
        check_feedback(schema, "penguins", missing)
    with pytest.raises(InvalidInput, match="a JSON object"):
        check_feedback(schema, "penguins", ["not", "an", "object"])


def test_a_regressor_s_correct_value_must_be_a_finite_number(regression_home: Path) -> None:
    regressor = LocalPredictor.from_home(regression_home).info().model_schema
    record = regressor.examples[0] if regressor.examples else regressor.defaults()
    prediction = {"value": 4100.0, "model_version": "v1"}
    for wrong in (math.nan, math.inf, "heavy", True, None):
        given = {"record": record, "prediction": prediction, "correct": wrong}
        with pytest.raises(InvalidInput, match="correct"):
            check_feedback(regressor, "m", given)
    given = {"record": record, "prediction": prediction, "correct": 4000}
    saved = check_feedback(regressor, "m", given)
    assert saved.correct == 4000.0 and saved.wrong


def test_the_store_keeps_rows_in_a_private_file_and_summarises_them(
    tmp_path: Path, example_predictor: LocalPredictor, schema: ModelSchema
) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    assert store.rows() == []
    rows = [
        check_feedback(schema, "penguins", body(example_predictor, correct=c, user="ana"))
        for c in ("Adelie", "Adelie", "Gentoo")
    ]
    ids = [store.save(row) for row in rows]
    assert ids == [1, 2, 3]
    assert (tmp_path / "feedback.sqlite").stat().st_mode & 0o077 == 0
    back = store.rows("penguins")
    assert back == rows and store.rows("other") == [] and store.rows("penguins", "v9") == []
    (summary,) = summarise(back)
    assert (summary.version, summary.count, summary.wrong) == ("v1", 3, 2)
    assert summary.confusion == {"Gentoo": {"Adelie": 2, "Gentoo": 1}}
    assert summary.wrong_share == pytest.approx(2 / 3)


def test_regression_feedback_summarises_the_mean_error() -> None:
    rows = [
        Feedback("m", "v2", {}, {"value": 10.0, "model_version": "v2"}, 12.0),
        Feedback("m", "v2", {}, {"value": 10.0, "model_version": "v2"}, 6.0),
    ]
    (summary,) = summarise(rows)
    assert summary.confusion is None and summary.mean_abs_error == pytest.approx(3.0)
