"""`unknown_tolerant_columns`: which categories a fitted pipeline can encode when unseen."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from model.encoders import mark_unknown_tolerant, unknown_tolerant_columns
from model.inference import infer_schema

FRAME = pd.DataFrame(
    {
        "colour": ["red", "green", "red", "blue"] * 5,
        "size": ["s", "m", "l", "m"] * 5,
        "weight": [1.0, 2.0, 3.0, 4.0] * 5,
        "y": [0, 1, 0, 1] * 5,
    }
)
X, Y = FRAME.drop(columns="y"), FRAME["y"]


def fitted(colour: object, size: object) -> Pipeline:
    columns = ColumnTransformer(
        [
            ("colour", colour, ["colour"]),
            ("size", size, [1]),  # by position: resolved to the name
            ("weight", StandardScaler(), ["weight"]),
        ]
    )
    return Pipeline([("prep", columns), ("model", LogisticRegression())]).fit(X, Y)


@pytest.mark.parametrize(
    ("colour", "size", "expected"),
    [
        (OneHotEncoder(handle_unknown="ignore"), OneHotEncoder(), {"colour"}),
        (OneHotEncoder(), OneHotEncoder(handle_unknown="infrequent_if_exist"), {"size"}),
        (
            make_pipeline(
                SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
            ),
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
            {"colour", "size"},
        ),
        (OneHotEncoder(handle_unknown="error"), OrdinalEncoder(), set()),
    ],
)
def test_tolerant_encoders_are_found_per_column(
    colour: object, size: object, expected: set[str]
) -> None:
    assert unknown_tolerant_columns(fitted(colour, size)) == expected


def test_a_bare_tolerant_encoder_covers_its_columns() -> None:
    encoder = OneHotEncoder(handle_unknown="ignore").fit(X[["colour", "size"]])
    assert unknown_tolerant_columns(encoder) == {"colour", "size"}
    assert unknown_tolerant_columns(LogisticRegression()) == set()


def test_marking_sets_allow_unknown_on_categories_only() -> None:
    schema = infer_schema(FRAME, task="classification", target="y", classes=["0", "1"])
    pipeline = fitted(OneHotEncoder(handle_unknown="ignore"), OneHotEncoder())
    assert mark_unknown_tolerant(schema, pipeline) == ["colour"]
    assert schema.feature("colour").allow_unknown
    assert not schema.feature("size").allow_unknown
    assert pipeline.predict(pd.DataFrame({"colour": ["purple"], "size": ["m"], "weight": [2.0]}))[
        0
    ] in (0, 1)
