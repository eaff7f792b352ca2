"""`infer_schema` on hand-made DataFrames: kinds, bounds, choices, defaults, optional, examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from model.inference import infer_feature, infer_schema
from model.schema import ModelSchema

N = 20
COLORS = ["red"] * 10 + ["green"] * 6 + ["blue"] * 4  # mode "red", 3 distinct values


def sample() -> pd.DataFrame:
    """One column per kind, 20 rows, plus a target; only `flipper` has missing values."""
    flipper = [float(180 + i) for i in range(N)]
    flipper[3] = np.nan
    flipper[11] = np.nan
    return pd.DataFrame(
        {
            "mass": np.linspace(0.5, 3.2, N),
            "count": np.arange(1, N + 1, dtype=np.int64),
            "flipper": flipper,
            "flag": [i % 3 == 0 for i in range(N)],
            "color": COLORS,
            "comment": [f"penguin number {i}" for i in range(N)],
            "species": ["Adelie", "Gentoo"] * (N // 2),
        }
    )


@pytest.fixture(scope="module")
def schema() -> ModelSchema:
    return infer_schema(sample(), task="classification", target="species", classes=["A", "G"])


def test_target_column_is_dropped(schema: ModelSchema) -> None:
    assert schema.feature_names == ["mass", "count", "flipper", "flag", "color", "comment"]
    assert schema.target == "species"
    assert schema.task == "classification"
    assert schema.classes == ["A", "G"]


def test_float_column_is_a_number_with_widened_bounds(schema: ModelSchema) -> None:
    mass = schema.feature("mass")
    assert mass.kind == "number"
    assert mass.required
    assert mass.expected_min is not None and mass.expected_max is not None
    assert mass.minimum is None and mass.maximum is None, "a sample's range is no hard limit"
    assert 0 <= mass.expected_min < 0.5
    assert mass.expected_max > 3.2
    assert mass.default == pytest.approx(float(np.median(np.linspace(0.5, 3.2, N))))


@pytest.mark.parametrize(
    ("values", "lowest"),
    [
        ([-5.0, -1.5, 2.0, 5.0], None),  # negative data: widened below
        ([0.0, 40.5, 100.0], 0.0),  # starts at 0: does not go negative
        ([1.0, 50.5, 100.0], 0.0),  # 10% below 1 would be negative: clipped at 0
        ([1000.0, 1000.0, 1000.0], None),  # constant column: still a non-empty range
        ([0.001, 0.002, 0.0035], None),  # small numbers: not clipped, 0.00075 is positive
    ],
)
def test_bounds_contain_the_sample_range(values: list[float], lowest: float | None) -> None:
    feature = infer_feature("x", pd.Series(values))
    assert feature.kind == "number"
    assert feature.expected_min is not None and feature.expected_max is not None
    assert feature.expected_min <= min(values)
    assert feature.expected_max >= max(values)
    assert feature.expected_min < feature.expected_max
    if lowest is not None:
        assert feature.expected_min == lowest
    else:
        assert feature.expected_min < min(values)
    if min(values) >= 0:
        assert feature.expected_min >= 0
    for value in values:
        assert feature.check(value) is None
        assert feature.warning(value) is None, "the sample's own values are usual"
    assert feature.check(feature.default) is None  # the default prefills UIs: must be valid
    assert feature.warning(feature.default) is None
    beyond = feature.expected_max + 1000.0
    assert feature.check(beyond) is None, "beyond the expected range: valid, predicted"
    assert f"outside the range seen in the sample ({feature.expected_range()})" in str(
        feature.warning(beyond)
    )


def test_default_of_tiny_numbers_is_within_bounds() -> None:
    # The default prefills UI widgets; rounding the median to 4 decimals must not push it
    # outside the inferred expected range (here it would become 0.0, below 8e-06).
    feature = infer_feature("x", pd.Series([0.00001, 0.00002, 0.00003]))
    assert feature.expected_min is not None and feature.expected_min <= 0.00001
    assert feature.check(feature.default) is None


def test_int_column_is_an_integer(schema: ModelSchema) -> None:
    count = schema.feature("count")
    assert count.kind == "integer"
    assert count.required
    assert count.expected_min is not None and count.expected_max is not None
    assert 0 <= count.expected_min <= 1
    assert count.expected_max >= N
    assert float(count.expected_min).is_integer() and float(count.expected_max).is_integer()
    assert isinstance(count.default, int)


def test_integral_float_column_with_nan_is_an_optional_integer(schema: ModelSchema) -> None:
    flipper = schema.feature("flipper")
    assert flipper.kind == "integer"
    assert flipper.required is False
    assert isinstance(flipper.default, int)
    assert flipper.check(None) is None


def test_non_integral_float_column_with_nan_stays_a_number() -> None:
    feature = infer_feature("x", pd.Series([1.5, np.nan, 2.0, 3.0]))
    assert feature.kind == "number"
    assert feature.required is False


def test_bool_column_is_a_boolean(schema: ModelSchema) -> None:
    flag = schema.feature("flag")
    assert flag.kind == "boolean"
    assert flag.required
    assert flag.default is False  # 13 False, 7 True
    assert flag.minimum is None and flag.maximum is None
    assert flag.expected_min is None and flag.expected_max is None


def test_bool_column_with_missing_values_is_an_optional_boolean() -> None:
    feature = infer_feature("x", pd.Series([True, None, True, False], dtype=object))
    assert feature.kind == "boolean"
    assert feature.required is False
    assert feature.default is True


def test_low_cardinality_strings_are_a_category(schema: ModelSchema) -> None:
    color = schema.feature("color")
    assert color.kind == "category"
    assert color.choices == ["blue", "green", "red"]
    assert color.default == "red"
    assert color.allow_unknown is False
    assert color.check("green") is None
    assert color.check("purple") is not None


def test_high_cardinality_strings_are_text(schema: ModelSchema) -> None:
    comment = schema.feature("comment")
    assert comment.kind == "text"
    assert comment.choices is None
    assert comment.check("anything at all") is None


def test_column_with_missing_values_is_optional() -> None:
    data = pd.DataFrame(
        {
            "island": ["Dream", None, "Biscoe", "Dream", "Dream", "Biscoe"],
            "mass": [3.5, 4.0, np.nan, 5.25, 4.75, 3.9],
        }
    )
    schema = infer_schema(data, task="regression")
    island, mass = schema.feature("island"), schema.feature("mass")
    assert island.kind == "category" and island.required is False
    assert island.choices == ["Biscoe", "Dream"]
    assert island.default == "Dream"
    assert mass.kind == "number" and mass.required is False
    assert schema.target is None


def test_unknown_target_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="'specie'"):
        infer_schema(sample(), task="classification", target="specie", classes=["A"])


def test_all_nan_column_raises_naming_it() -> None:
    data = sample().assign(empty=np.nan)
    with pytest.raises(ValueError, match="'empty'"):
        infer_schema(data, task="classification", target="species", classes=["A", "G"])


def _rows_as_records(data: pd.DataFrame) -> list[dict[str, object]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in data.to_dict(orient="records")
    ]


def test_examples_are_real_rows_of_the_sample(schema: ModelSchema) -> None:
    rows = _rows_as_records(sample().drop(columns=["species"]))
    assert len(schema.examples) == 3
    for example in schema.examples:
        assert list(example) == schema.feature_names
        assert example in rows
    assert len({json.dumps(e, sort_keys=True) for e in schema.examples}) == 3  # distinct rows


def test_examples_are_complete_rows_when_there_are_enough(schema: ModelSchema) -> None:
    assert all(value is not None for example in schema.examples for value in example.values())


def test_examples_have_json_friendly_python_types(schema: ModelSchema) -> None:
    python_type = {"number": float, "integer": int, "boolean": bool, "category": str, "text": str}
    for example in schema.examples:
        for feature in schema.features:
            assert type(example[feature.name]) is python_type[feature.kind], feature.name
    json.dumps(schema.examples, allow_nan=False)


def test_examples_validate_against_the_schema(schema: ModelSchema) -> None:
    assert schema.validate_records(schema.examples) == schema.examples


def test_examples_fall_back_to_incomplete_rows_with_none() -> None:
    data = pd.DataFrame({"a": [1.5, np.nan, 2.5], "b": ["x", "y", None]})
    schema = infer_schema(data, task="regression", n_examples=3)
    assert len(schema.examples) == 3
    assert any(None in example.values() for example in schema.examples)
    schema.validate_records(schema.examples)


def test_n_examples_is_capped_by_the_sample() -> None:
    data = pd.DataFrame({"a": [1.5, 2.5]})
    assert len(infer_schema(data, task="regression", n_examples=5).examples) == 2


def test_inferred_schema_round_trips_through_json(schema: ModelSchema) -> None:
    assert ModelSchema.model_validate(schema.model_dump(mode="json")) == schema


def test_penguins_sample_gives_a_usable_schema() -> None:
    data = load_penguins()
    schema = infer_schema(data, task="regression", target="body_mass_g")
    kinds = {f.name: f.kind for f in schema.features}
    assert kinds == {
        "species": "category",
        "island": "category",
        "bill_length_mm": "number",
        "bill_depth_mm": "number",
        "flipper_length_mm": "integer",
        "sex": "category",
        "year": "integer",
    }
    assert schema.feature("sex").required is False
    assert schema.feature("island").required is True
    schema.validate_records(schema.examples)
    # every real row of the sample is valid for the schema inferred from it
    records = _rows_as_records(data.drop(columns=["body_mass_g"]))
    assert len(schema.validate_records(records)) == len(data)
