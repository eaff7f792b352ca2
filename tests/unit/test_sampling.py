"""`generate_records` / `parity_records`: valid records for parity checks, reproducible by seed."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from model.record_model import record_model
from model.sampling import OPEN_RANGE, generate_records, parity_records
from model.schema import Feature, ModelSchema
from tests.unit.test_record_model import EXAMPLE, KINDS

SCHEMAS = {"example": EXAMPLE, "kinds": KINDS}
SEEDS = range(40)


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_generated_records_pass_both_validators(schema: ModelSchema) -> None:
    model = record_model(schema)
    for seed in SEEDS:
        records = generate_records(schema, 25, seed=seed)
        assert len(records) == 25
        clean = schema.validate_records(records)  # raises InvalidInput on any bad field
        assert clean == records, "complete records: nothing added or dropped"
        for record in records:
            try:
                model.model_validate(record)
            except ValidationError as exc:
                pytest.fail(f"seed {seed}: record_model refused {record}: {exc}")


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_records_have_every_feature_in_schema_order(schema: ModelSchema) -> None:
    for record in generate_records(schema, 20, seed=1):
        assert list(record) == schema.feature_names


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_the_same_seed_gives_the_same_records(schema: ModelSchema) -> None:
    first = generate_records(schema, 30, seed=7)
    assert generate_records(schema, 30, seed=7) == first
    assert generate_records(schema, 30, seed=8) != first
    assert generate_records(schema, 10, seed=7) == first[:10], "a prefix of a longer run"


def test_the_default_seed_is_reproducible_too() -> None:
    assert generate_records(EXAMPLE, 15) == generate_records(EXAMPLE, 15, seed=0)


def test_no_records_for_n_zero() -> None:
    assert generate_records(EXAMPLE, 0, seed=3) == []


def test_values_cover_the_features_ranges_and_choices() -> None:
    records = [r for seed in SEEDS for r in generate_records(EXAMPLE, 25, seed=seed)]
    for feature in EXAMPLE.features:
        values = [r[feature.name] for r in records if r[feature.name] is not None]
        if feature.kind == "category":
            assert set(values) == set(feature.choices or [])
        else:
            assert feature.minimum is not None and feature.maximum is not None
            assert all(feature.minimum <= v <= feature.maximum for v in values)
            span = feature.maximum - feature.minimum
            assert min(values) < feature.minimum + span / 4, feature.name
            assert max(values) > feature.maximum - span / 4, feature.name
            if feature.kind == "integer":
                assert all(type(v) is int for v in values), feature.name
            else:
                assert all(type(v) is float for v in values), feature.name


# The inferred kind of schema: an expected range, and (here) a hard lower limit of 0.
EXPECTED = ModelSchema(
    task="regression",
    features=[
        Feature(name="mass", kind="number", minimum=0, expected_min=2, expected_max=4),
        Feature(name="count", kind="integer", expected_min=10, expected_max=20),
    ],
)


def test_most_numbers_lie_in_the_expected_range_and_some_beyond_it() -> None:
    records = [r for seed in SEEDS for r in generate_records(EXPECTED, 25, seed=seed)]
    schema_warned = [EXPECTED.record_warnings(r) for r in records]
    for feature in EXPECTED.features:
        values = [r[feature.name] for r in records]
        assert feature.expected_min is not None and feature.expected_max is not None
        inside = [v for v in values if feature.expected_min <= v <= feature.expected_max]
        below = [v for v in values if v < feature.expected_min]
        above = [v for v in values if v > feature.expected_max]
        assert 0.8 * len(values) <= len(inside) < len(values), feature.name
        assert below and above, f"{feature.name}: beyond both ends of the expected range"
    assert min(r["mass"] for r in records) >= 0, "never beyond a hard limit"
    assert any(schema_warned) and not all(schema_warned)
    EXPECTED.validate_records(records)  # beyond the expected range is still valid


def test_optional_features_get_none_sometimes_and_required_ones_never() -> None:
    records = [r for seed in SEEDS for r in generate_records(KINDS, 25, seed=seed)]
    for feature in KINDS.features:
        nones = sum(r[feature.name] is None for r in records)
        if feature.required:
            assert nones == 0, feature.name
        else:
            # about 10 % of 1000: far from both 0 and "always"
            assert 30 <= nones <= 200, (feature.name, nones)


def test_every_kind_gets_values_of_its_type() -> None:
    records = [r for seed in SEEDS for r in generate_records(KINDS, 25, seed=seed)]

    def present(name: str) -> list[object]:
        return [r[name] for r in records if r[name] is not None]

    assert set(present("flag")) == {True, False}
    assert set(present("maybe")) == {True, False}
    assert all(isinstance(v, str) for v in present("note") + present("label"))
    assert set(present("brand")) == {"acme"}  # only listed choices, even when others are allowed
    assert all(type(v) is int and v >= 0 for v in present("count"))
    level = present("level")
    assert all(type(v) is int and v <= 10 for v in level)
    assert min(level) < -OPEN_RANGE / 2, "an open bound stands in as -OPEN_RANGE"
    score = present("score")
    assert all(isinstance(v, float) and math.isfinite(v) and abs(v) <= OPEN_RANGE for v in score)
    assert min(v for v in score if isinstance(v, float)) < -OPEN_RANGE / 2


def test_integer_bounds_that_are_not_whole_numbers() -> None:
    schema = ModelSchema(
        task="regression",
        features=[Feature(name="n", kind="integer", minimum=1.5, maximum=4.5)],
    )
    values = {r["n"] for seed in range(10) for r in generate_records(schema, 20, seed=seed)}
    assert values == {2, 3, 4}
    schema.validate_records([{"n": v} for v in values])


def test_a_single_point_range_is_generated_exactly() -> None:
    schema = ModelSchema(
        task="regression",
        features=[
            Feature(name="x", kind="number", minimum=3.25, maximum=3.25),
            Feature(name="k", kind="integer", minimum=7, maximum=7),
        ],
    )
    assert generate_records(schema, 5, seed=0) == [{"x": 3.25, "k": 7}] * 5


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_parity_records_are_examples_defaults_then_generated(schema: ModelSchema) -> None:
    records = parity_records(schema, n_generated=12, seed=5)
    n_examples = len(schema.examples)
    assert records[:n_examples] == schema.examples
    assert records[n_examples] == schema.defaults()
    assert records[n_examples + 1 :] == generate_records(schema, 12, seed=5)
