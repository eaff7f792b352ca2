"""Make a model the way a user would, outside the kit: a regressor saved with joblib.

    python scripts/example_regressor.py --out /tmp/body-mass
    kit import /tmp/body-mass/regressor.joblib --sample /tmp/body-mass/sample.csv \\
        --target body_mass_g --name body-mass

It predicts a penguin's body mass from its species, island, sex and measurements, with its own
preprocessing inside the Pipeline (the kit never needs to know it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import joblib
import pandas as pd
import typer
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

TARGET = "body_mass_g"
NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
CATEGORIES = ["species", "island", "sex"]


def build() -> Pipeline:
    return Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("numbers", SimpleImputer(strategy="median"), NUMBERS),
                        (
                            "categories",
                            make_pipeline(
                                SimpleImputer(strategy="most_frequent"),
                                OneHotEncoder(handle_unknown="ignore"),
                            ),
                            CATEGORIES,
                        ),
                    ]
                ),
            ),
            ("forest", RandomForestRegressor(n_estimators=50, max_depth=8, random_state=0)),
        ]
    )


def training_data() -> pd.DataFrame:
    data: pd.DataFrame = load_penguins()
    return data.dropna(subset=[TARGET])[[*CATEGORIES, *NUMBERS, TARGET]]


def main(
    out: Annotated[Path, typer.Option(help="Folder for regressor.joblib and sample.csv.")],
) -> None:
    data = training_data()
    model = build().fit(data.drop(columns=[TARGET]), data[TARGET])
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "regressor.joblib")
    data.sample(n=60, random_state=1).to_csv(out / "sample.csv", index=False)
    print(f"wrote {out / 'regressor.joblib'} and {out / 'sample.csv'}")


if __name__ == "__main__":
    typer.run(main)
