"""A wide model for the UI tests: 30 numeric features (scikit-learn's breast-cancer data, which
ships with it), fitted and imported the way a user would bring it (`kit import`)."""

from __future__ import annotations

from pathlib import Path

ANNOTATIONS = """
[model]
title = "Breast cancer (Wisconsin)"
description = "Is a breast mass malignant? From measurements of a fine-needle aspirate."

[features."mean radius"]
description = "Mean distance from the center to points on the perimeter"
unit = "mm"
minimum = 0                       # a hard limit: -1 is refused, naming the field
maximum = 100

[classes]
"0" = "malignant"
"1" = "benign"
"""
FEATURES = 30


def make_cancer_home(folder: Path) -> Path:
    """A kit home (inside `folder`) whose current model is the breast-cancer classifier."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model.artifact import ModelStore
    from model.importer import import_model

    data = load_breast_cancer(as_frame=True).frame
    features, target = data.drop(columns=["target"]), data["target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model.fit(features, target), folder / "cancer.joblib")
    data.sample(n=120, random_state=0).to_csv(folder / "sample.csv", index=False)
    (folder / "annotations.toml").write_text(ANNOTATIONS)
    home = folder / "kit"
    import_model(
        ModelStore(home),
        folder / "cancer.joblib",
        folder / "sample.csv",
        target="target",
        name="cancer",
        annotations=folder / "annotations.toml",
    )
    return home
