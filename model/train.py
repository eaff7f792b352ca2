"""The example model: Palmer penguins species from measurements, island and sex.

The data ships with the `palmerpenguins` package (no download). Feature engineering lives
once, inside the saved Pipeline: median imputation + scaling for numbers, most-frequent
imputation + one-hot encoding for categories, then a logistic regression. Metrics are
measured on a stratified held-out split that the model never saw.
"""

from __future__ import annotations

import pandas as pd
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model.artifact import Manifest, ModelStore
from model.encoders import mark_unknown_tolerant
from model.inference import infer_schema
from model.schema import ModelSchema

EXAMPLE_NAME = "penguins"
TARGET = "species"
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
DESCRIPTIONS = {  # refinements by hand on top of the inferred schema: (description, unit)
    "island": ("Island of the Palmer Archipelago where the penguin was observed", None),
    "bill_length_mm": ("Length of the bill (culmen)", "mm"),
    "bill_depth_mm": ("Depth of the bill (culmen)", "mm"),
    "flipper_length_mm": ("Length of the flipper", "mm"),
    "body_mass_g": ("Body mass", "g"),
    "sex": ("Sex of the penguin (may be unknown)", None),
}
TEST_SIZE = 0.25
SEED = 42


def load_example_data() -> pd.DataFrame:
    """Penguins with the features and the target (344 rows; some features missing)."""
    data: pd.DataFrame = load_penguins()
    return data[[*FEATURES, TARGET]].dropna(subset=[TARGET]).reset_index(drop=True)


def build_pipeline(schema: ModelSchema) -> Pipeline:
    """The whole feature engineering and model, derived from the schema's feature kinds."""
    numeric = [f.name for f in schema.features if f.kind in ("number", "integer")]
    categorical = [f.name for f in schema.features if f.kind in ("category", "boolean")]
    preprocess = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("classifier", LogisticRegression(max_iter=1000))])


def example_schema(data: pd.DataFrame) -> ModelSchema:
    classes = sorted(str(c) for c in data[TARGET].unique())
    schema = infer_schema(data, task="classification", target=TARGET, classes=classes)
    for feature in schema.features:
        feature.description, feature.unit = DESCRIPTIONS[feature.name]
    return schema


def evaluate(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, prefix: str = ""
) -> dict[str, float]:
    predicted = pipeline.predict(x)
    return {
        f"{prefix}accuracy": float(accuracy_score(y, predicted)),
        f"{prefix}balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        f"{prefix}f1_macro": float(f1_score(y, predicted, average="macro")),
        f"{prefix}log_loss": float(
            log_loss(y, pipeline.predict_proba(x), labels=pipeline.classes_)
        ),
    }


def train_example(store: ModelStore, name: str = EXAMPLE_NAME) -> Manifest:
    """Train the example on a stratified split, measure it on the held-out part, save it."""
    data = load_example_data()
    schema = example_schema(data)
    x, y = data[schema.feature_names], data[TARGET].astype(str)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED
    )
    pipeline = build_pipeline(schema).fit(x_train, y_train)
    mark_unknown_tolerant(schema, pipeline)  # OneHotEncoder(handle_unknown="ignore"): warnings
    baseline = DummyClassifier(strategy="most_frequent").fit(x_train, y_train)
    metrics = evaluate(pipeline, x_test, y_test, prefix="test_")
    metrics["test_baseline_accuracy"] = float(baseline.score(x_test, y_test))
    metrics["train_accuracy"] = float(pipeline.score(x_train, y_train))
    metrics["n_train"], metrics["n_test"] = float(len(x_train)), float(len(x_test))
    return store.save(
        name=name,
        schema=schema,
        metrics=metrics,
        source="train",
        estimator=pipeline,
        reference=x_train,  # the inputs the model learnt from: what `kit monitor` compares with
    )
