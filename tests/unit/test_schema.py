"""`Feature.check` and `ModelSchema.validate_records`: strict, one error per bad field."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from model.errors import FieldError, InvalidInput, KitError
from model.schema import Feature, ModelSchema

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
ISLANDS = "'Biscoe', 'Dream', 'Torgersen'"


def make_schema() -> ModelSchema:
    return ModelSchema(
        task="classification",
        classes=CLASSES,
        features=[
            Feature(name="bill_length_mm", kind="number", minimum=25, maximum=70, unit="mm"),
            Feature(name="flipper_length_mm", kind="integer", minimum=150, maximum=250),
            Feature(name="island", kind="category", choices=["Biscoe", "Dream", "Torgersen"]),
            Feature(name="tagged", kind="boolean"),
            Feature(name="sex", kind="category", choices=["female", "male"], required=False),
            Feature(name="note", kind="text", required=False),
        ],
        examples=[
            {
                "bill_length_mm": 39.1,
                "flipper_length_mm": 181,
                "island": "Torgersen",
                "tagged": False,
                "sex": "male",
                "note": "first",
            }
        ],
    )


def valid_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "bill_length_mm": 39.1,
        "flipper_length_mm": 181,
        "island": "Dream",
        "tagged": True,
        "sex": "female",
        "note": "seen at dawn",
    }
    record.update(changes)
    return record


def errors_of(schema: ModelSchema, records: list[Any]) -> tuple[InvalidInput, list[FieldError]]:
    with pytest.raises(InvalidInput) as info:
        schema.validate_records(records)
    return info.value, info.value.errors


# --- valid records ---------------------------------------------------------------------------


def test_valid_record_passes_unchanged() -> None:
    schema = make_schema()
    record = valid_record()
    assert schema.validate_records([record]) == [record]


def test_clean_records_follow_schema_order() -> None:
    schema = make_schema()
    shuffled = dict(reversed(list(valid_record().items())))
    [clean] = schema.validate_records([shuffled])
    assert list(clean) == schema.feature_names


def test_missing_optional_fields_are_completed_with_none() -> None:
    schema = make_schema()
    record = valid_record()
    del record["sex"], record["note"]
    [clean] = schema.validate_records([record])
    assert list(clean) == schema.feature_names
    assert clean["sex"] is None
    assert clean["note"] is None
    assert clean["island"] == "Dream"


def test_optional_fields_accept_explicit_none() -> None:
    schema = make_schema()
    [clean] = schema.validate_records([valid_record(sex=None, note=None)])
    assert clean["sex"] is None and clean["note"] is None


def test_validate_records_does_not_mutate_input() -> None:
    schema = make_schema()
    record = valid_record()
    del record["sex"]
    schema.validate_records([record])
    assert "sex" not in record


def test_empty_list_is_valid() -> None:
    assert make_schema().validate_records([]) == []


@pytest.mark.parametrize("value", [25, 25.0, 70, 47.5, 40])
def test_number_bounds_are_inclusive_and_ints_are_numbers(value: float) -> None:
    schema = make_schema()
    [clean] = schema.validate_records([valid_record(bill_length_mm=value)])
    assert clean["bill_length_mm"] == value


def test_integer_feature_accepts_integral_float() -> None:
    schema = make_schema()
    [clean] = schema.validate_records([valid_record(flipper_length_mm=181.0)])
    assert clean["flipper_length_mm"] == 181
    assert schema.feature("flipper_length_mm").check(181.0) is None


def test_category_allow_unknown_accepts_other_texts_only() -> None:
    strict = Feature(name="island", kind="category", choices=["Biscoe", "Dream"])
    lenient = strict.model_copy(update={"allow_unknown": True})
    assert strict.check("Anvers") is not None
    assert lenient.check("Anvers") is None
    assert lenient.check("Dream") is None
    assert lenient.check(3) is not None  # still a text
    assert lenient.expectation() == "a text, usually one of 'Biscoe', 'Dream'"
    assert strict.expectation() == "one of 'Biscoe', 'Dream'"


# --- one FieldError per bad field ------------------------------------------------------------

BAD_VALUES = [
    # field, value, expectation in the message, how the value is shown
    ("bill_length_mm", "40", "a number between 25 and 70", "'40'"),
    ("bill_length_mm", True, "a number between 25 and 70", "True"),
    ("bill_length_mm", False, "a number between 25 and 70", "False"),
    ("flipper_length_mm", True, "an integer between 150 and 250", "True"),
    ("tagged", 1, "true or false", "1"),
    ("tagged", "true", "true or false", "'true'"),
    ("island", 3, f"one of {ISLANDS}", "3"),
    ("island", "Anvers", f"one of {ISLANDS}", "'Anvers'"),
    ("island", "dream", f"one of {ISLANDS}", "'dream'"),
    ("note", 5, "a text", "5"),
    ("bill_length_mm", float("nan"), "finite, not NaN or infinity", "nan"),
    ("bill_length_mm", float("inf"), "finite, not NaN or infinity", "inf"),
    ("bill_length_mm", float("-inf"), "finite, not NaN or infinity", "-inf"),
    ("bill_length_mm", 24.9, "a number between 25 and 70", "24.9"),
    ("bill_length_mm", 612.0, "a number between 25 and 70", "612.0"),
    ("flipper_length_mm", 181.5, "an integer between 150 and 250", "181.5"),
    ("flipper_length_mm", 149, "an integer between 150 and 250", "149"),
    ("flipper_length_mm", 251, "an integer between 150 and 250", "251"),
    ("bill_length_mm", [40], "a number between 25 and 70", "[40]"),
    ("island", None, f"one of {ISLANDS} (required)", "None"),
]


@pytest.mark.parametrize(("field", "value", "expected", "shown"), BAD_VALUES)
def test_bad_value_gives_one_field_error(field: str, value: Any, expected: str, shown: str) -> None:
    schema = make_schema()
    assert schema.feature(field).check(value) is not None
    exc, errors = errors_of(schema, [valid_record(**{field: value})])
    assert len(errors) == 1
    [error] = errors
    assert error.record == 0
    assert error.field == field
    assert error.received is value
    assert expected in error.expected
    message = str(exc)
    assert message == error.message
    assert f"feature {field!r}" in message
    assert expected in message
    assert message.endswith(f"got {shown}")
    assert not message.startswith("record")


def test_nan_message_names_the_problem() -> None:
    _, [error] = errors_of(make_schema(), [valid_record(bill_length_mm=math.nan)])
    assert error.message == (
        "feature 'bill_length_mm' must be a number between 25 and 70 "
        "(finite, not NaN or infinity), got nan"
    )


def test_huge_integer_is_rejected_not_crashing() -> None:
    # JSON parsers give arbitrarily large ints; float(10**400) overflows.
    feature = Feature(name="x", kind="number", minimum=0, maximum=100)
    assert feature.check(10**400) is not None
    _, [error] = errors_of(ModelSchema(task="regression", features=[feature]), [{"x": 10**400}])
    assert error.field == "x"


def test_missing_required_field() -> None:
    schema = make_schema()
    record = valid_record()
    del record["island"]
    exc, [error] = errors_of(schema, [record])
    assert error.field == "island"
    assert error.missing
    assert error.expected == f"one of {ISLANDS} (required)"
    assert str(exc) == f"feature 'island' is missing: expected one of {ISLANDS} (required)"


def test_unknown_field_is_rejected() -> None:
    schema = make_schema()
    exc, [error] = errors_of(schema, [valid_record(species="Adelie")])
    assert error.field == "species"
    assert error.received == "Adelie"
    assert str(exc).startswith("unknown field 'species'")
    assert "bill_length_mm" in str(exc)  # lists the real features


@pytest.mark.parametrize("record", ["oops", None, 42, [39.1, 181], ("Dream",)])
def test_record_that_is_not_a_dict(record: Any) -> None:
    exc, [error] = errors_of(make_schema(), [record])
    assert error.field == "(record)"
    assert error.record == 0
    assert str(exc) == f"record 0 must be a JSON object keyed by feature name, got {record!r}"


def test_all_bad_fields_of_a_record_are_reported_at_once() -> None:
    schema = make_schema()
    record = valid_record(bill_length_mm="40", tagged=1, extra=True)
    del record["island"]
    exc, errors = errors_of(schema, [record])
    assert sorted(e.field for e in errors) == ["bill_length_mm", "extra", "island", "tagged"]
    assert all(e.record == 0 for e in errors)
    assert str(exc) == "; ".join(e.message for e in errors)
    assert "record 0:" not in str(exc)


def test_errors_carry_the_record_index_and_message_prefix_when_several_are_bad() -> None:
    schema = make_schema()
    records = [
        valid_record(),
        valid_record(bill_length_mm=612.0),
        valid_record(),
        valid_record(island="Anvers", tagged="yes"),
    ]
    exc, errors = errors_of(schema, records)
    assert [(e.record, e.field) for e in errors] == [
        (1, "bill_length_mm"),
        (3, "island"),
        (3, "tagged"),
    ]
    parts = str(exc).split("; ")
    assert parts[0] == (
        "record 1: feature 'bill_length_mm' must be a number between 25 and 70, got 612.0"
    )
    assert parts[1].startswith("record 3: feature 'island'")
    assert parts[2].startswith("record 3: feature 'tagged'")


def test_single_bad_record_among_several_keeps_its_index_without_prefix() -> None:
    exc, [error] = errors_of(make_schema(), [valid_record(), valid_record(tagged=0)])
    assert error.record == 1
    assert str(exc).startswith("feature 'tagged'")


def test_invalid_input_is_a_value_error_and_a_kit_error() -> None:
    exc, _ = errors_of(make_schema(), [valid_record(tagged=0)])
    assert isinstance(exc, ValueError)
    assert isinstance(exc, KitError)
    assert exc.exit_code == 2


# --- expectations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        (Feature(name="x", kind="number"), "a number"),
        (Feature(name="x", kind="number", minimum=0), "a number >= 0"),
        (Feature(name="x", kind="integer", maximum=9), "an integer <= 9"),
        (Feature(name="x", kind="integer", minimum=1, maximum=2.5), "an integer between 1 and 2.5"),
        (Feature(name="x", kind="boolean"), "true or false"),
        (Feature(name="x", kind="text"), "a text"),
        (Feature(name="x", kind="category", choices=["a", "b"]), "one of 'a', 'b'"),
    ],
)
def test_expectation(feature: Feature, expected: str) -> None:
    assert feature.expectation() == expected


def test_unbounded_number_accepts_any_finite_value() -> None:
    feature = Feature(name="x", kind="number")
    assert feature.check(-1e300) is None
    assert feature.check(1e300) is None
    assert feature.check(math.inf) is not None


# --- schema consistency ----------------------------------------------------------------------


def test_duplicate_feature_names_are_rejected() -> None:
    with pytest.raises(ValidationError, match="unique"):
        ModelSchema(
            task="regression",
            features=[Feature(name="a", kind="number"), Feature(name="a", kind="text")],
        )


@pytest.mark.parametrize("classes", [None, []])
def test_classification_needs_classes(classes: list[str] | None) -> None:
    with pytest.raises(ValidationError, match="classes"):
        ModelSchema(
            task="classification", classes=classes, features=[Feature(name="a", kind="number")]
        )


def test_regression_needs_no_classes() -> None:
    schema = ModelSchema(task="regression", features=[Feature(name="a", kind="number")])
    assert schema.classes is None


def test_schema_needs_at_least_one_feature() -> None:
    with pytest.raises(ValidationError):
        ModelSchema(task="regression", features=[])


@pytest.mark.parametrize("choices", [None, []])
def test_category_needs_choices(choices: list[str] | None) -> None:
    with pytest.raises(ValidationError, match="no choices"):
        Feature(name="island", kind="category", choices=choices)


def test_minimum_above_maximum_is_rejected() -> None:
    with pytest.raises(ValidationError, match="above maximum"):
        Feature(name="x", kind="number", minimum=10, maximum=1)
    assert Feature(name="x", kind="number", minimum=1, maximum=1).check(1) is None


def test_unknown_schema_keys_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Feature.model_validate({"name": "x", "kind": "number", "minimun": 0})
    with pytest.raises(ValidationError):
        Feature.model_validate({"name": "x", "kind": "decimal"})


def test_feature_lookup() -> None:
    schema = make_schema()
    assert schema.feature("island").kind == "category"
    with pytest.raises(KeyError, match="no feature named 'species'"):
        schema.feature("species")


def test_defaults_has_one_entry_per_feature() -> None:
    schema = make_schema()
    assert list(schema.defaults()) == schema.feature_names


# --- serialisation ---------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    schema = make_schema()
    data = schema.model_dump(mode="json")
    assert ModelSchema.model_validate(data) == schema
    assert ModelSchema.model_validate(json.loads(json.dumps(data))) == schema


def test_field_error_to_json_shape() -> None:
    error = FieldError(2, "bill_length_mm", "a number between 25 and 70", 612.0)
    assert error.to_json() == {
        "record": 2,
        "field": "bill_length_mm",
        "expected": "a number between 25 and 70",
        "received": 612.0,
        "missing": False,
        "message": "feature 'bill_length_mm' must be a number between 25 and 70, got 612.0",
    }


@pytest.mark.parametrize(
    ("value", "shown"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]
)
def test_field_error_to_json_shows_non_finite_as_string(value: float, shown: str) -> None:
    data = FieldError(0, "x", "a number", value).to_json()
    assert data["received"] == shown
    json.dumps(data, allow_nan=False)  # strict JSON: would raise on a float NaN


def test_field_error_to_json_of_missing_field() -> None:
    data = FieldError(0, "island", "one of 'Dream' (required)", missing=True).to_json()
    assert data["received"] is None and data["missing"] is True
    assert data["message"] == "feature 'island' is missing: expected one of 'Dream' (required)"


def test_long_received_values_are_shortened_in_messages() -> None:
    error = FieldError(0, "note", "a text", "x" * 500)
    assert len(error.message) < 200
    assert error.message.endswith("...")
    assert error.to_json()["received"] == "x" * 500


# --- expected range (inferred) vs hard limits (declared) --------------------------------------

EXPECTED = Feature(name="bill_length_mm", kind="number", expected_min=29, expected_max=63)


@pytest.mark.parametrize("value", [29, 29.0, 45.5, 63])
def test_values_in_the_expected_range_carry_no_warning(value: float) -> None:
    assert EXPECTED.check(value) is None
    assert EXPECTED.warning(value) is None


@pytest.mark.parametrize(
    ("value", "shown"), [(71, "71"), (71.0, "71"), (-3.5, "-3.5"), (1e9, "1e+09")]
)
def test_values_outside_the_expected_range_are_valid_and_warned(value: float, shown: str) -> None:
    assert EXPECTED.check(value) is None, "real data is not bad input"
    assert EXPECTED.warning(value) == (
        f"bill_length_mm {shown} is outside the range seen in the sample (29–63): "
        "the model is extrapolating"
    )


def test_hard_limits_still_refuse_and_the_expected_range_still_warns() -> None:
    both = EXPECTED.model_copy(update={"minimum": 0.0, "maximum": 100.0})
    assert both.check(-1.0) == "a number between 0 and 100"
    assert both.check(101) == "a number between 0 and 100"
    assert both.check(80) is None and both.warning(80) is not None


def test_a_one_sided_expected_range_is_shown_as_such() -> None:
    low_only = Feature(name="x", kind="integer", expected_min=5)
    assert low_only.expected_range() == ">= 5"
    assert low_only.warning(4) == (
        "x 4 is outside the range seen in the sample (>= 5): the model is extrapolating"
    )
    assert Feature(name="y", kind="number").expected_range() is None


def test_an_inverted_expected_range_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"expected_min 5\.0 is above expected_max 1\.0"):
        Feature(name="x", kind="number", expected_min=5, expected_max=1)


def test_unknown_categories_are_warned_only_where_the_pipeline_encodes_them() -> None:
    strict = Feature(name="island", kind="category", choices=["Biscoe", "Dream"])
    lenient = strict.model_copy(update={"allow_unknown": True})
    assert strict.check("Anvers") is not None
    assert lenient.check("Anvers") is None
    assert lenient.warning("Anvers") == (
        "island 'Anvers' is not a category the model was trained on ('Biscoe', 'Dream'): "
        "it is encoded as unknown"
    )
    assert lenient.warning("Dream") is None and lenient.warning(None) is None


def test_record_warnings_come_in_feature_order_and_never_refuse() -> None:
    schema = ModelSchema(
        task="regression",
        features=[
            EXPECTED,
            Feature(name="island", kind="category", choices=["Dream"], allow_unknown=True),
            Feature(name="depth", kind="number", expected_min=10, expected_max=20, required=False),
        ],
    )
    record = {"bill_length_mm": 70.0, "island": "Anvers", "depth": None}
    assert schema.validate_records([record]) == [record]
    warned = schema.record_warnings(record)
    assert [w.split(" ", 1)[0] for w in warned] == ["bill_length_mm", "island"]
    assert schema.record_warnings({"bill_length_mm": 40.0, "island": "Dream"}) == []


def test_same_inputs_ignores_texts_and_expected_ranges_but_not_limits() -> None:
    schema = make_schema()
    described = schema.model_copy(deep=True)
    described.features[0].description = "Length of the bill"
    described.features[0].expected_min = 1.0
    described.title, described.class_names = "Penguins", {"Adelie": "Adélie penguin"}
    assert schema.same_inputs(described)
    limited = schema.model_copy(deep=True)
    limited.features[0].maximum = 60.0
    assert not schema.same_inputs(limited)


def test_class_names_must_name_classes_of_the_model() -> None:
    schema = make_schema().model_copy(update={"class_names": {"Adelie": "Adélie penguin"}})
    assert schema.class_name("Adelie") == "Adélie penguin"
    assert schema.class_name("Gentoo") == "Gentoo"
    with pytest.raises(ValidationError, match=r"classes the model does not have: \['Emperor'\]"):
        ModelSchema.model_validate(
            {**make_schema().model_dump(), "class_names": {"Emperor": "Emperor penguin"}}
        )


def test_a_format_1_schema_reads_its_inferred_bounds_as_the_expected_range() -> None:
    from model.schema import upgrade_schema

    old = make_schema().model_dump(mode="json")
    for feature in old["features"]:
        feature.pop("expected_min"), feature.pop("expected_max")
    upgraded = ModelSchema.model_validate(upgrade_schema(old, format_version=1))
    bill = upgraded.feature("bill_length_mm")
    assert (bill.minimum, bill.maximum) == (None, None)
    assert (bill.expected_min, bill.expected_max) == (25, 70)
    assert bill.check(612.0) is None and bill.warning(612.0) is not None
    current = make_schema().model_dump(mode="json")
    assert upgrade_schema(current, format_version=2) == current
