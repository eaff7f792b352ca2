"""`import_model`: a user's fitted estimator + a sample CSV -> a verified artifact, no code."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import joblib
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from model.artifact import MODEL_FILE, ModelStore, sha256_of
from model.errors import ArtifactError, UsageError
from model.importer import import_model
from model.predictor import LocalPredictor

CATEGORIES = ["island", "sex"]
NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
COLUMNS = CATEGORIES + NUMBERS
TARGET = "body_mass_g"


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    """Penguins with a known body mass (features may still be missing)."""
    return load_penguins().dropna(subset=[TARGET]).reset_index(drop=True)


@pytest.fixture(scope="module")
def regressor_file(tmp_path_factory: pytest.TempPathFactory, penguins: pd.DataFrame) -> Path:
    """A user's RandomForestRegressor Pipeline for body mass, saved with joblib.dump."""
    pipe = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
                        ("numbers", SimpleImputer(strategy="median"), NUMBERS),
                    ]
                ),
            ),
            ("forest", RandomForestRegressor(n_estimators=20, random_state=0)),
        ]
    )
    pipe.fit(penguins[COLUMNS], penguins[TARGET])
    path = tmp_path_factory.mktemp("user") / "body mass.joblib"
    joblib.dump(pipe, path)
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "home")


# --- (a) a regressor Pipeline with a target in the sample ------------------------------------


def test_import_regressor_pipeline(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    sample = write_csv(penguins[[*COLUMNS, TARGET]], tmp_path / "sample.csv")
    report = import_model(store, regressor_file, sample, target=TARGET, name="body-mass")
    manifest = report.manifest
    schema = manifest.schema_

    assert manifest.name == "body-mass"
    assert manifest.version == "v1"
    assert manifest.source == "import"
    assert manifest.estimator == "Pipeline(ColumnTransformer -> RandomForestRegressor)"
    assert schema.task == "regression"
    assert schema.classes is None
    assert TARGET not in schema.feature_names
    assert schema.feature_names == COLUMNS  # the order the model was fitted with
    assert schema.feature("island").kind == "category"
    assert schema.feature("sex").required is False
    assert schema.feature("bill_length_mm").kind == "number"

    metrics = manifest.metrics
    assert set(metrics) == {"n_sample", "sample_r2", "sample_mae"}
    assert metrics["n_sample"] == len(penguins)
    assert 0.5 < metrics["sample_r2"] <= 1.0  # a forest on its own training data
    assert 0.0 < metrics["sample_mae"] < 500.0  # grams
    assert any("sample you gave" in note for note in report.notes)

    copied = store.path("body-mass", "v1") / MODEL_FILE
    assert sha256_of(copied) == sha256_of(regressor_file) == manifest.sha256
    assert copied.read_bytes() == regressor_file.read_bytes()
    assert store.current() == store.path("body-mass", "v1")


def test_imported_regressor_predicts_like_the_users_pipeline(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    sample = write_csv(penguins[[*COLUMNS, TARGET]], tmp_path / "sample.csv")
    import_model(store, regressor_file, sample, target=TARGET, name="body-mass")
    predictor = LocalPredictor.from_home(store.home)
    assert predictor.info().name == "body-mass"
    record = {
        "island": "Biscoe",
        "sex": "male",
        "bill_length_mm": 47.5,
        "bill_depth_mm": 15.0,
        "flipper_length_mm": 217,
    }
    [prediction] = predictor.predict([record])
    data = prediction.to_json()
    assert set(data) == {"value", "model_version"}
    assert data["model_version"] == "v1"
    assert 2500.0 < data["value"] < 6500.0
    expected = joblib.load(regressor_file).predict(pd.DataFrame([record])[COLUMNS])[0]
    assert data["value"] == pytest.approx(float(expected))
    # the schema's own examples predict too, with the optional sex left out
    [unknown_sex] = predictor.predict([{k: v for k, v in record.items() if k != "sex"}])
    assert unknown_sex.value is not None and math.isfinite(unknown_sex.value)


def test_import_without_target_has_no_sample_metrics(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    sample = write_csv(penguins[COLUMNS].head(30), tmp_path / "sample.csv")
    report = import_model(store, regressor_file, sample, name="body-mass")
    assert report.manifest.metrics == {"n_sample": 30.0}
    assert not [note for note in report.notes if "metrics" in note]
    assert report.manifest.schema_.feature_names == COLUMNS


def test_name_defaults_to_the_file_stem(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    sample = write_csv(penguins[COLUMNS].head(30), tmp_path / "sample.csv")
    report = import_model(store, regressor_file, sample)  # "body mass.joblib"
    assert report.manifest.name == "body-mass"


def test_sample_rows_with_a_missing_target_do_not_crash_the_import(
    store: ModelStore, regressor_file: Path, tmp_path: Path
) -> None:
    # Raw data often has rows whose target is unknown (2 penguins have no body mass).
    raw = load_penguins()[[*COLUMNS, TARGET]]
    assert raw[TARGET].isna().any()
    sample = write_csv(raw, tmp_path / "raw.csv")
    try:
        report = import_model(store, regressor_file, sample, target=TARGET, name="body-mass")
    except ArtifactError as exc:  # acceptable: a clear error naming the target
        assert TARGET in str(exc)
    else:  # or: metrics measured on the rows that have a target
        assert math.isfinite(report.manifest.metrics["sample_r2"])
        assert math.isfinite(report.manifest.metrics["sample_mae"])


# --- (b) a classifier fitted on a numpy array ------------------------------------------------


def test_import_classifier_fitted_on_an_array(
    store: ModelStore, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    data = penguins.dropna(subset=NUMBERS)
    classifier = RandomForestClassifier(n_estimators=10, random_state=0)
    classifier.fit(data[NUMBERS].to_numpy(), data["species"].to_numpy())
    assert not hasattr(classifier, "feature_names_in_")
    model_path = tmp_path / "species.joblib"
    joblib.dump(classifier, model_path)
    sample = write_csv(data[[*NUMBERS, "species"]], tmp_path / "sample.csv")

    with warnings.catch_warnings():  # sklearn: "X has feature names, but ... fitted without"
        warnings.filterwarnings("ignore", message="X has feature names")
        report = import_model(store, model_path, sample, target="species", name="species")
        predictor = LocalPredictor.from_home(store.home)
        [prediction] = predictor.predict(
            [{"bill_length_mm": 47.5, "bill_depth_mm": 15.0, "flipper_length_mm": 217}]
        )

    schema = report.manifest.schema_
    assert schema.task == "classification"
    assert schema.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert schema.feature_names == NUMBERS
    [order_note] = [n for n in report.notes if "column order" in n]
    assert "fitted on an array" in order_note
    assert str(NUMBERS) in order_note
    assert 0.9 <= report.manifest.metrics["sample_accuracy"] <= 1.0
    assert prediction.label == "Gentoo"
    assert prediction.probabilities is not None
    assert set(prediction.probabilities) == set(schema.classes)


# --- (c), (d) sample columns vs the model's ---------------------------------------------------


def test_sample_missing_a_model_column(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    sample = write_csv(penguins[[*COLUMNS, TARGET]].drop(columns=["sex"]), tmp_path / "s.csv")
    with pytest.raises(ArtifactError, match=r"\['sex'\]"):
        import_model(store, regressor_file, sample, target=TARGET, name="body-mass")
    assert store.versions("body-mass") == []
    assert not store.current_file.exists()


def test_sample_extra_column_is_left_out(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    frame = penguins[[*COLUMNS, TARGET]].copy()
    frame.insert(0, "penguin_id", range(1000, 1000 + len(frame)))
    sample = write_csv(frame, tmp_path / "sample.csv")
    report = import_model(store, regressor_file, sample, target=TARGET, name="body-mass")
    assert "penguin_id" not in report.manifest.schema_.feature_names
    assert report.manifest.schema_.feature_names == COLUMNS
    [extra_note] = [n for n in report.notes if "penguin_id" in n]
    assert "left out" in extra_note
    for example in report.manifest.schema_.examples:
        assert "penguin_id" not in example


# --- (e), (f), (g) files and arguments that cannot be imported --------------------------------


@pytest.mark.parametrize(
    "content", [b"this is not a model\n", b"\x80\x04\x95garbage", b"PK\x03\x04zip?", b""]
)
def test_file_that_is_not_a_joblib_pickle(
    store: ModelStore, penguins: pd.DataFrame, tmp_path: Path, content: bytes
) -> None:
    model_path = tmp_path / "model.joblib"
    model_path.write_bytes(content)
    sample = write_csv(penguins[COLUMNS].head(10), tmp_path / "sample.csv")
    with pytest.raises(ArtifactError, match=r"joblib\.dump"):
        import_model(store, model_path, sample, name="broken")
    assert store.versions("broken") == []


def test_unknown_target(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    sample = write_csv(penguins[[*COLUMNS, TARGET]], tmp_path / "sample.csv")
    with pytest.raises(ArtifactError, match="'body_mass'") as info:
        import_model(store, regressor_file, sample, target="body_mass", name="body-mass")
    assert TARGET in str(info.value)  # the real columns are listed
    assert store.versions("body-mass") == []


def test_object_without_predict(store: ModelStore, penguins: pd.DataFrame, tmp_path: Path) -> None:
    model_path = tmp_path / "model.joblib"
    joblib.dump({"weights": [1, 2, 3]}, model_path)
    sample = write_csv(penguins[COLUMNS].head(10), tmp_path / "sample.csv")
    with pytest.raises(ArtifactError, match=r"dict, which has no predict\(\)"):
        import_model(store, model_path, sample, name="weights")
    assert store.versions("weights") == []


def test_missing_model_file(store: ModelStore, penguins: pd.DataFrame, tmp_path: Path) -> None:
    sample = write_csv(penguins[COLUMNS].head(10), tmp_path / "sample.csv")
    with pytest.raises(UsageError, match=r"model file .* does not exist"):  # exit 2: a typo
        import_model(store, tmp_path / "nowhere.joblib", sample, name="nowhere")


def test_missing_sample_file(store: ModelStore, regressor_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"sample file .* does not exist"):
        import_model(store, regressor_file, tmp_path / "nowhere.csv", name="body-mass")


def test_sample_without_rows(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    sample = write_csv(penguins[COLUMNS].head(0), tmp_path / "sample.csv")
    with pytest.raises(ArtifactError, match="no rows"):
        import_model(store, regressor_file, sample, name="body-mass")


def test_invalid_name(
    store: ModelStore, regressor_file: Path, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    sample = write_csv(penguins[COLUMNS].head(10), tmp_path / "sample.csv")
    with pytest.raises(ArtifactError, match=r"e\.g\. 'penguins'"):
        import_model(store, regressor_file, sample, name="Body Mass!")
