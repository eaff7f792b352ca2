"""`record_model`: the pydantic model (and OpenAPI JSON schema) generated from a ModelSchema.

It must describe the same rules as `ModelSchema.validate_records`, which is what the service
really enforces: the agreement of both validators is checked on arbitrary JSON-like records.
"""

from __future__ import annotations

import math
from typing import Any

import jsonschema  # pinned in requirements.lock: validates the OpenAPI document as clients do
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from model.errors import InvalidInput
from model.record_model import record_model
from model.sampling import generate_records
from model.schema import Feature, ModelSchema

# The example model's schema as `kit train` infers it (penguins), written out by hand so the
# tests need no training: island is required, every other feature may be null.
EXAMPLE = ModelSchema(
    task="classification",
    classes=["Adelie", "Chinstrap", "Gentoo"],
    target="species",
    features=[
        Feature(
            name="island",
            kind="category",
            choices=["Biscoe", "Dream", "Torgersen"],
            default="Biscoe",
            description="Island of the Palmer Archipelago where the penguin was observed",
        ),
        Feature(
            name="bill_length_mm",
            kind="number",
            minimum=29.0,
            maximum=63.0,
            required=False,
            default=44.45,
            description="Length of the bill (culmen)",
            unit="mm",
        ),
        Feature(
            name="bill_depth_mm",
            kind="number",
            minimum=12.2,
            maximum=22.4,
            required=False,
            default=17.3,
            unit="mm",
        ),
        Feature(
            name="flipper_length_mm",
            kind="integer",
            minimum=166.0,
            maximum=237.0,
            required=False,
            default=197,
            unit="mm",
        ),
        Feature(
            name="body_mass_g",
            kind="integer",
            minimum=2300.0,
            maximum=6700.0,
            required=False,
            default=4050,
            unit="g",
        ),
        Feature(
            name="sex",
            kind="category",
            choices=["female", "male"],
            required=False,
            default="male",
            description="Sex of the penguin (may be unknown)",
        ),
    ],
    examples=[
        {
            "island": "Torgersen",
            "bill_length_mm": 39.1,
            "bill_depth_mm": 18.7,
            "flipper_length_mm": 181,
            "body_mass_g": 3750,
            "sex": "male",
        },
        {
            "island": "Biscoe",
            "bill_length_mm": 46.1,
            "bill_depth_mm": 13.2,
            "flipper_length_mm": 211,
            "body_mass_g": 4500,
            "sex": "female",
        },
        {
            "island": "Dream",
            "bill_length_mm": 46.5,
            "bill_depth_mm": 17.9,
            "flipper_length_mm": 192,
            "body_mass_g": 3500,
            "sex": "female",
        },
    ],
)

# Every kind and option a user's schema (`kit import`) may have.
KINDS = ModelSchema(
    task="regression",
    features=[
        Feature(name="ratio", kind="number", minimum=-1.5, maximum=1.5),
        Feature(name="score", kind="number", required=False),  # no bounds at all
        Feature(name="count", kind="integer", minimum=0),  # a lower bound only
        Feature(name="offset", kind="integer", required=False),  # no bounds at all
        Feature(name="level", kind="integer", maximum=10, required=False),
        Feature(name="flag", kind="boolean"),
        Feature(name="maybe", kind="boolean", required=False),
        Feature(name="colour", kind="category", choices=["red", "green"]),
        Feature(name="brand", kind="category", choices=["acme"], allow_unknown=True),
        Feature(name="note", kind="text", required=False),
        Feature(name="label", kind="text"),
    ],
    examples=[
        {
            "ratio": 0.5,
            "score": -3e9,
            "count": 7,
            "offset": -12,
            "level": None,
            "flag": True,
            "maybe": None,
            "colour": "green",
            "brand": "not-acme",
            "note": "",
            "label": "x",
        }
    ],
)
SCHEMAS = {"example": EXAMPLE, "kinds": KINDS}


def _accepts(model: type[BaseModel], record: Any) -> bool:
    try:
        model.model_validate(record)
    except ValidationError:
        return False
    return True


def _property(json_schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The non-null branch of a property (optional features are anyOf [T, null])."""
    prop = json_schema["properties"][name]
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    assert len(branches) == 1, prop
    return branches[0]


# --- the JSON schema (what the OpenAPI document shows) ------------------------------------


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_json_schema_lists_every_feature_in_order(schema: ModelSchema) -> None:
    document = record_model(schema).model_json_schema()
    assert document["type"] == "object"
    assert list(document["properties"]) == schema.feature_names
    assert sorted(document.get("required", [])) == sorted(
        f.name for f in schema.features if f.required
    )
    assert document["additionalProperties"] is False


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_json_schema_types_bounds_and_choices(schema: ModelSchema) -> None:
    document = record_model(schema).model_json_schema()
    expected_type = {"number": "number", "integer": "integer", "boolean": "boolean"}
    for feature in schema.features:
        prop = _property(document, feature.name)
        assert prop["type"] == expected_type.get(feature.kind, "string"), feature.name
        assert prop.get("minimum") == feature.minimum, feature.name
        assert prop.get("maximum") == feature.maximum, feature.name
        if feature.kind == "category" and not feature.allow_unknown:
            assert prop["enum"] == feature.choices, feature.name
        else:
            assert "enum" not in prop, feature.name


def test_json_schema_bounds_of_the_example() -> None:
    document = record_model(EXAMPLE).model_json_schema()
    assert _property(document, "bill_length_mm") == {
        "type": "number",
        "minimum": 29.0,
        "maximum": 63.0,
    }
    assert _property(document, "flipper_length_mm")["type"] == "integer"
    assert _property(document, "island")["enum"] == ["Biscoe", "Dream", "Torgersen"]
    assert _property(document, "sex")["enum"] == ["female", "male"]


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_optional_features_allow_null_and_required_ones_do_not(schema: ModelSchema) -> None:
    document = record_model(schema).model_json_schema()
    for feature in schema.features:
        prop = document["properties"][feature.name]
        types = {b.get("type") for b in prop.get("anyOf", [prop])}
        if feature.required:
            assert "null" not in types, feature.name
            assert "default" not in prop, feature.name
        else:
            assert "null" in types, feature.name
            assert prop["default"] is None, feature.name


def test_json_schema_carries_descriptions_units_and_examples() -> None:
    document = record_model(EXAMPLE).model_json_schema()
    bill = document["properties"]["bill_length_mm"]
    assert bill["description"] == "Length of the bill (culmen) · unit: mm"
    assert bill["examples"] == [44.45]
    assert document["properties"]["bill_depth_mm"]["description"] == "unit: mm"
    assert document["examples"] == EXAMPLE.examples[:1]
    bare = ModelSchema(task="regression", features=[Feature(name="x", kind="number")])
    bare_document = record_model(bare, name="Bare").model_json_schema()
    assert bare_document["title"] == "Bare"
    assert "examples" not in bare_document
    assert "description" not in bare_document["properties"]["x"]


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_the_published_document_accepts_valid_records(schema: ModelSchema) -> None:
    """A client checking records against the OpenAPI document accepts what the service does."""
    validator = jsonschema.Draft202012Validator(record_model(schema).model_json_schema())
    for record in [*schema.examples, *generate_records(schema, 100, seed=3)]:
        assert list(validator.iter_errors(record)) == [], record
    assert not validator.is_valid({**schema.examples[0], "unknown": 1})


# --- strict validation -----------------------------------------------------------------------


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_the_examples_and_records_without_optional_fields_are_accepted(schema: ModelSchema) -> None:
    model = record_model(schema)
    for record in schema.examples:
        assert model.model_validate(record).model_dump() == record
    optional_missing = {f.name: schema.examples[0][f.name] for f in schema.features if f.required}
    assert model.model_validate(optional_missing).model_dump() == {
        **{f.name: None for f in schema.features},
        **optional_missing,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bill_length_mm", "40"),  # no coercion from text
        ("bill_length_mm", True),  # a bool is not a number
        ("bill_length_mm", math.nan),
        ("bill_length_mm", math.inf),
        ("bill_length_mm", -math.inf),
        ("bill_length_mm", 28.99),  # below the minimum
        ("bill_length_mm", 63.01),  # above the maximum
        ("bill_length_mm", [39.1]),
        ("flipper_length_mm", "181"),
        ("flipper_length_mm", 181.5),
        ("flipper_length_mm", False),
        ("flipper_length_mm", 238),
        ("island", "Mars"),
        ("island", "biscoe"),  # choices are case-sensitive
        ("island", None),  # required
        ("island", 1),
        ("sex", True),
    ],
)
def test_strict_validation_rejects_what_the_schema_rejects(field: str, value: Any) -> None:
    record = {**EXAMPLE.examples[0], field: value}
    with pytest.raises(ValidationError) as caught:
        record_model(EXAMPLE).model_validate(record)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}
    with pytest.raises(InvalidInput):
        EXAMPLE.validate_records([record])


@pytest.mark.parametrize(
    ("field", "value"),
    [("flag", 1), ("flag", "true"), ("flag", None), ("maybe", 0), ("label", 5), ("brand", 3)],
)
def test_booleans_and_texts_are_not_coerced(field: str, value: Any) -> None:
    record = {**KINDS.examples[0], field: value}
    assert not _accepts(record_model(KINDS), record)
    with pytest.raises(InvalidInput):
        KINDS.validate_records([record])


def test_unknown_and_missing_fields_are_rejected() -> None:
    model = record_model(EXAMPLE)
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**EXAMPLE.examples[0], "wings": 2})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
        (("wings",), "extra_forbidden")
    ]
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"bill_length_mm": 40.0})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(("island",), "missing")]
    for not_a_record in ([EXAMPLE.examples[0]], "record", None, 3):
        assert not _accepts(model, not_a_record)


def test_an_integer_is_a_valid_number_and_unknown_categories_may_be_allowed() -> None:
    record = {**KINDS.examples[0], "ratio": 1, "score": 10**15, "brand": "anything at all"}
    assert _accepts(record_model(KINDS), record)
    assert KINDS.validate_records([record])


# --- agreement with ModelSchema.validate_records -------------------------------------------


def _schema_verdict(schema: ModelSchema, record: Any) -> tuple[bool, set[str]]:
    try:
        schema.validate_records([record])
    except InvalidInput as exc:
        return False, {e.field for e in exc.errors}
    return True, set()


def _model_verdict(model: type[BaseModel], record: Any) -> tuple[bool, set[str]]:
    try:
        model.model_validate(record)
    except ValidationError as exc:
        return False, {str(e["loc"][0]) for e in exc.errors()}
    return True, set()


HUGE = [10**400, -(10**400), 2**1024]  # JSON integers no float can hold

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),  # NaN and infinities included
        st.sampled_from([*HUGE, "40", "", "true", "null", "NaN"]),
        st.text(max_size=8),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=4,
)


def _values_for(feature: Feature) -> st.SearchStrategy[Any]:
    """Values close to the feature's rules: valid ones, and ones just across each rule."""
    if feature.kind in ("number", "integer"):
        low = feature.minimum if feature.minimum is not None else -1e6
        high = feature.maximum if feature.maximum is not None else 1e6
        ints = st.integers(min_value=math.ceil(low) - 2, max_value=math.floor(high) + 2)
        return st.one_of(
            ints,
            ints.map(float),  # integral floats: 181.0
            st.floats(min_value=low - 1, max_value=high + 1),
            st.sampled_from([low, high, low - 1e-9, high + 1e-9]),
            st.sampled_from([str(low), bool(feature.minimum), *HUGE]),
        )
    if feature.kind == "category":
        choices = feature.choices or []
        return st.sampled_from([*choices, *(c.upper() for c in choices), "", 1]) | st.text()
    if feature.kind == "boolean":
        return st.sampled_from([True, False, 0, 1, "true", 1.0])
    return st.text(max_size=8) | st.sampled_from([0, 1.5, False])


def _records(schema: ModelSchema) -> st.SearchStrategy[dict[str, Any]]:
    """Arbitrary JSON-like dicts over the feature names (and a few others), many close to valid."""
    fields = {f.name: st.one_of(_values_for(f), st.none(), JSON_VALUES) for f in schema.features}
    extras = {name: JSON_VALUES for name in ("unknown", "", schema.feature_names[0].upper())}
    arbitrary = st.fixed_dictionaries({}, optional={**fields, **extras})

    @st.composite
    def near_valid(draw: st.DrawFn) -> dict[str, Any]:
        """A generated valid record with at most two fields changed or removed."""
        record = generate_records(schema, 1, seed=draw(st.integers(0, 10_000)))[0]
        for name in draw(st.lists(st.sampled_from(schema.feature_names), max_size=2, unique=True)):
            if draw(st.booleans()):
                del record[name]
            else:
                record[name] = draw(fields[name])
        if draw(st.integers(0, 9)) == 0:
            record["unknown"] = draw(JSON_VALUES)
        return record

    return st.one_of(arbitrary, near_valid())


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_both_validators_agree_on_arbitrary_records(schema: ModelSchema) -> None:
    model = record_model(schema)
    verdicts: list[bool] = []

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(record=_records(schema))
    def check(record: dict[str, Any]) -> None:
        schema_ok, schema_fields = _schema_verdict(schema, record)
        model_ok, model_fields = _model_verdict(model, record)
        assert model_ok == schema_ok, (record, schema_fields, model_fields)
        assert model_fields == schema_fields, record  # and they blame the same fields
        verdicts.append(schema_ok)

    check()
    # Both outcomes were exercised: the agreement is not only on rejections.
    assert any(verdicts)
    assert not all(verdicts)


def test_an_integral_float_for_an_integer_feature_gets_the_same_verdict() -> None:
    record = {**EXAMPLE.examples[0], "flipper_length_mm": 181.0}
    assert _schema_verdict(EXAMPLE, record) == _model_verdict(record_model(EXAMPLE), record)


def test_a_huge_integer_for_an_unbounded_integer_feature_gets_the_same_verdict() -> None:
    record = {**KINDS.examples[0], "offset": 10**400}
    assert _schema_verdict(KINDS, record) == _model_verdict(record_model(KINDS), record)
