"""One contract, two backends: the model in-process and the promoted BentoML service.

Every test here runs against `LocalPredictor` and `RemotePredictor` (the session's `promoted`
service of the example model, read-only) and expects the same answers: the same info, the same
prediction shape, the same field errors, and (property-based) the same predictions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_production.client import RemotePredictor
from model.errors import InvalidInput
from model.predictor import LocalPredictor, Prediction, Predictor, same_predictions
from model.sampling import generate_records
from model.schema import Feature, ModelSchema
from tests.helpers import GENTOO, Promoted

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def local(promoted: Promoted) -> LocalPredictor:
    return LocalPredictor.from_home(promoted.home)


@pytest.fixture(scope="module")
def remote(promoted: Promoted) -> Iterator[RemotePredictor]:
    predictor = RemotePredictor(promoted.url)
    try:
        yield predictor
    finally:
        predictor.close()


@pytest.fixture(params=["local", "remote"])
def predictor(
    request: pytest.FixtureRequest, local: LocalPredictor, remote: RemotePredictor
) -> Predictor:
    return local if request.param == "local" else remote


@pytest.fixture(scope="module")
def schema(local: LocalPredictor) -> ModelSchema:
    return local.schema


def _errors(predictor: Predictor, records: list[Any]) -> list[tuple[str, int, str, bool]]:
    """The field errors `predict` raises, as (field, record, message, missing)."""
    with pytest.raises(InvalidInput) as caught:
        predictor.predict(records)
    return [(e.field, e.record, e.message, e.missing) for e in caught.value.errors]


def _assert_contract_shape(
    predictions: list[Prediction], n: int, schema: ModelSchema, version: str
) -> None:
    assert len(predictions) == n
    classes = schema.classes or []
    for prediction in predictions:
        body = prediction.to_json()
        assert set(body) - {"warnings"} == {"label", "probabilities", "model_version"}
        assert body.get("warnings", ["x"]), "warnings: absent, or a non-empty list"
        assert all(isinstance(w, str) for w in body.get("warnings", []))
        assert body["model_version"] == version
        assert body["label"] in classes
        probabilities = body["probabilities"]
        assert list(probabilities) == classes
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())
        assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-6)
        assert body["label"] == max(probabilities, key=probabilities.__getitem__)
        json.dumps(body, allow_nan=False)  # plain JSON, nothing a client cannot parse


# --- info ----------------------------------------------------------------------------------


def test_info_is_the_same_model_on_both(
    local: LocalPredictor, remote: RemotePredictor, promoted: Promoted
) -> None:
    a, b = local.info(), remote.info()
    assert (a.name, a.version) == (b.name, b.version) == ("penguins", "v1")
    assert a.model_schema == b.model_schema
    assert a.sha256 == b.sha256 and a.metrics == b.metrics
    assert a.backend == "local"
    assert b.backend == f"remote: {promoted.url}"


def test_info_lifecycle(predictor: Predictor) -> None:
    info = predictor.info()
    assert info.title == "penguins:v1"
    assert info.model_schema.feature_names == [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
    ]


# --- valid records -------------------------------------------------------------------------


def test_predictions_have_the_contract_shape(predictor: Predictor, schema: ModelSchema) -> None:
    records = [*schema.examples, *generate_records(schema, 40, seed=7)]
    predictions = predictor.predict(records)
    _assert_contract_shape(predictions, len(records), schema, "v1")


def test_gentoo_is_a_gentoo(predictor: Predictor) -> None:
    [prediction] = predictor.predict([GENTOO])
    assert prediction.label == "Gentoo" and prediction.model_version == "v1"


def test_empty_list_gives_no_predictions(predictor: Predictor) -> None:
    assert predictor.predict([]) == []


def test_optional_fields_may_be_none_or_omitted(
    predictor: Predictor, local: LocalPredictor, schema: ModelSchema
) -> None:
    optional = [f.name for f in schema.features if not f.required]
    assert optional, "the example model has optional features"
    as_none = {**GENTOO, **dict.fromkeys(optional)}
    omitted = {k: v for k, v in GENTOO.items() if k not in optional}
    one_none = {**GENTOO, optional[0]: None}
    predictions = predictor.predict([as_none, omitted, one_none])
    _assert_contract_shape(predictions, 3, schema, "v1")
    # None and "not sent" mean the same thing (the pipeline imputes both)
    assert same_predictions(predictions[0], predictions[1], TOLERANCE)
    expected = local.predict([as_none, omitted, one_none])
    assert all(
        same_predictions(a, b, TOLERANCE) for a, b in zip(expected, predictions, strict=True)
    )


def test_order_is_kept(predictor: Predictor, local: LocalPredictor, schema: ModelSchema) -> None:
    records = generate_records(schema, 12, seed=3)
    one_by_one = [local.predict([r])[0] for r in records]
    together = predictor.predict(records)
    assert all(same_predictions(a, b, TOLERANCE) for a, b in zip(one_by_one, together, strict=True))


# --- invalid records: the same field errors on both ----------------------------------------

BASE = {"island": "Dream"}

INVALID: dict[str, tuple[list[Any], list[tuple[str, int, bool]]]] = {
    # case: (records, expected [(field, record, missing)])
    "missing-required": ([{"bill_length_mm": 40.0}], [("island", 0, True)]),
    "string-for-number": ([{**BASE, "bill_length_mm": "40"}], [("bill_length_mm", 0, False)]),
    "string-for-integer": ([{**BASE, "body_mass_g": "4000"}], [("body_mass_g", 0, False)]),
    "bool-for-number": ([{**BASE, "bill_depth_mm": True}], [("bill_depth_mm", 0, False)]),
    "false-for-integer": (
        [{**BASE, "flipper_length_mm": False}],
        [("flipper_length_mm", 0, False)],
    ),
    "nan": ([{**BASE, "bill_length_mm": math.nan}], [("bill_length_mm", 0, False)]),
    "infinity": ([{**BASE, "bill_length_mm": math.inf}], [("bill_length_mm", 0, False)]),
    "minus-infinity": ([{**BASE, "bill_depth_mm": -math.inf}], [("bill_depth_mm", 0, False)]),
    "fraction-for-integer": (
        [{**BASE, "flipper_length_mm": 200.5}],
        [("flipper_length_mm", 0, False)],
    ),
    "huge-integer": ([{**BASE, "body_mass_g": 10**400}], [("body_mass_g", 0, False)]),
    "number-for-category": ([{"island": 3}], [("island", 0, False)]),
    "unknown-field": ([{**BASE, "wings": 2}], [("wings", 0, False)]),
    "non-object-record": ([5], [("(record)", 0, False)]),
    "list-record": ([["Dream", 40.0]], [("(record)", 0, False)]),
    "null-record": ([None], [("(record)", 0, False)]),
    "several-bad-records": (
        [GENTOO, {"island": 7, "bill_length_mm": "x"}, GENTOO, {"bill_depth_mm": "99"}],
        [
            ("island", 1, False),
            ("bill_length_mm", 1, False),
            ("island", 3, True),
            ("bill_depth_mm", 3, False),
        ],
    ),
    "bad-record-among-good": ([GENTOO, "not a record", GENTOO], [("(record)", 1, False)]),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_records_raise_the_same_errors(
    case: str, local: LocalPredictor, remote: RemotePredictor
) -> None:
    records, expected = INVALID[case]
    local_errors = _errors(local, records)
    assert sorted((f, r, m) for f, r, _, m in local_errors) == sorted(expected)
    remote_errors = _errors(remote, records)
    assert remote_errors == local_errors


# --- unusual but valid records: predicted on both, with the same warnings ------------------

WARNED: dict[str, tuple[dict[str, Any], list[str]]] = {
    # case: (record, the fields warned about)
    "below-the-sample": ({**GENTOO, "bill_length_mm": 1.0}, ["bill_length_mm"]),
    "above-the-sample": ({**GENTOO, "body_mass_g": 99999}, ["body_mass_g"]),
    "far-above": ({**GENTOO, "flipper_length_mm": 10**6}, ["flipper_length_mm"]),
    "unseen-island": ({**GENTOO, "island": "Atlantis"}, ["island"]),
    "category-wrong-case": ({**GENTOO, "island": "dream"}, ["island"]),
    "several": ({**GENTOO, "bill_depth_mm": 99.0, "sex": "x"}, ["bill_depth_mm", "sex"]),
}


@pytest.mark.parametrize("case", list(WARNED))
def test_unusual_records_are_predicted_with_the_same_warnings(
    case: str, local: LocalPredictor, remote: RemotePredictor
) -> None:
    record, fields = WARNED[case]
    [expected] = local.predict([record])
    [served] = remote.predict([record])
    assert expected.label is not None and expected.warnings is not None
    assert [w.split(" ", 1)[0] for w in expected.warnings] == fields
    assert served.warnings == expected.warnings
    assert same_predictions(expected, served, TOLERANCE)


def test_a_usual_record_has_no_warnings_key_on_the_wire(promoted: Promoted) -> None:
    response = requests.post(f"{promoted.url}/predict", json={"records": [GENTOO]}, timeout=30)
    assert response.status_code == 200
    assert "warnings" not in response.json()["predictions"][0], "existing clients keep working"


@pytest.mark.parametrize(
    ("literal", "shown"),
    [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")],
)
def test_service_refuses_non_finite_literals_like_local(
    literal: str, shown: str, local: LocalPredictor, promoted: Promoted
) -> None:
    """Python's json writes NaN/Infinity literals (allow_nan): the server must name the field
    with a 4xx (never a 500, never a prediction) and say what the local model says."""
    records = [GENTOO, {**BASE, "bill_length_mm": float(literal)}]
    body = json.dumps({"records": records}, allow_nan=True)
    assert literal in body
    response = requests.post(
        f"{promoted.url}/predict",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    served = [
        (e["field"], e["record"], e["message"], e["missing"]) for e in response.json()["errors"]
    ]
    assert served == _errors(local, records)
    assert served[0][:2] == ("bill_length_mm", 1) and f"got {shown}" in served[0][2]


# --- property-based parity -----------------------------------------------------------------


def _reach(feature: Feature) -> tuple[float | None, float | None]:
    """Hard limits where declared, else the expected range widened threefold: valid values
    inside and outside the range seen in the sample (with warnings)."""
    low, high = feature.expected_min, feature.expected_max
    span = (high - low) if low is not None and high is not None else 0.0
    low = feature.minimum if feature.minimum is not None else (low - span if low else low)
    high = feature.maximum if feature.maximum is not None else (high + span if high else high)
    return low, high


def _value_strategy(feature: Feature) -> st.SearchStrategy[Any]:
    low, high = _reach(feature)
    if feature.kind == "number":
        value: st.SearchStrategy[Any] = st.floats(
            min_value=low, max_value=high, allow_nan=False, allow_infinity=False
        )
    elif feature.kind == "integer":
        value = st.integers(
            min_value=None if low is None else math.ceil(low),
            max_value=None if high is None else math.floor(high),
        )
    elif feature.kind == "category":
        value = st.sampled_from(feature.choices or [])
    elif feature.kind == "boolean":
        value = st.booleans()
    else:
        value = st.text(max_size=20)
    return value if feature.required else st.none() | value


def record_strategy(schema: ModelSchema) -> st.SearchStrategy[dict[str, Any]]:
    """Valid records of `schema`: bounds, choices, None for optional fields, or left out."""
    required = {f.name: _value_strategy(f) for f in schema.features if f.required}
    optional = {f.name: _value_strategy(f) for f in schema.features if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


@pytest.fixture(scope="module")
def parity(
    local: LocalPredictor, remote: RemotePredictor
) -> tuple[LocalPredictor, RemotePredictor, st.SearchStrategy[list[dict[str, Any]]]]:
    """Both predictors, and batches of 1 to 8 valid records of the served schema."""
    return local, remote, st.lists(record_strategy(local.schema), min_size=1, max_size=8)


@settings(
    max_examples=60,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_local_and_remote_agree(
    data: st.DataObject,
    parity: tuple[LocalPredictor, RemotePredictor, st.SearchStrategy[list[dict[str, Any]]]],
) -> None:
    local, remote, batches = parity
    records = data.draw(batches, label="records")
    assert len(local.schema.validate_records(records)) == len(records)  # the strategy is valid
    expected = local.predict(records)
    served = remote.predict(records)
    assert len(served) == len(records)
    for i, (a, b) in enumerate(zip(expected, served, strict=True)):
        assert same_predictions(a, b, TOLERANCE), (records[i], a.to_json(), b.to_json())
