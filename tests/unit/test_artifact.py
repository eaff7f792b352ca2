"""The artifact format: model.joblib + manifest.json, versions, current, verify-before-unpickle."""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import pytest
import sklearn

from model import artifact
from model.artifact import (
    MANIFEST_FILE,
    MODEL_FILE,
    Manifest,
    ModelStore,
    ModelVersionWarning,
    check_name,
    library_versions,
    load,
    sha256_of,
    verify,
)
from model.errors import ArtifactError
from model.predictor import LocalPredictor
from model.schema import ModelSchema
from model.train import FEATURES, train_example


@pytest.fixture
def forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every call to joblib.load made by model.artifact (it must make none)."""
    calls: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise AssertionError("joblib.load was called on an artifact that should be refused")

    monkeypatch.setattr(artifact.joblib, "load", spy)
    return calls


def v1(store: ModelStore) -> Path:
    return store.path("penguins", "v1")


# --- what train_example writes ----------------------------------------------------------------


def test_train_writes_model_and_manifest(example_home: Path) -> None:
    folder = example_home / "models" / "penguins" / "v1"
    assert (folder / "model.joblib").is_file()
    assert (folder / "manifest.json").is_file()
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "model.joblib",
        "reference.parquet",  # the training inputs, for `kit monitor`
    ]
    assert json.loads((example_home / "current.json").read_text()) == {
        "name": "penguins",
        "version": "v1",
    }


def test_manifest_content(example_home: Path, example_manifest: Manifest) -> None:
    folder = example_home / "models" / "penguins" / "v1"
    data = json.loads((folder / "manifest.json").read_text())
    assert data["name"] == "penguins"
    assert data["version"] == "v1"
    assert data["source"] == "train"
    assert data["format_version"] == artifact.FORMAT_VERSION
    assert data["sha256"] == sha256_of(folder / "model.joblib")
    assert len(data["sha256"]) == 64
    assert data["versions"] == {
        "python": library_versions()["python"],
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }
    assert data["estimator"] == "Pipeline(ColumnTransformer -> LogisticRegression)"
    created = datetime.fromisoformat(data["created_at"])
    assert created.tzinfo is not None
    assert "schema_" not in data


def test_manifest_metrics(example_manifest: Manifest) -> None:
    metrics = example_manifest.metrics
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert 0.0 <= metrics["test_baseline_accuracy"] <= 1.0
    assert metrics["test_accuracy"] > metrics["test_baseline_accuracy"]
    assert metrics["test_accuracy"] >= 0.9  # penguins are easy: a regression would show here
    assert metrics["n_train"] + metrics["n_test"] == 344  # every penguin has a species


def test_manifest_schema(example_home: Path) -> None:
    data = json.loads((example_home / "models/penguins/v1/manifest.json").read_text())
    schema = ModelSchema.model_validate(data["schema"])
    assert schema.task == "classification"
    assert schema.feature_names == FEATURES
    assert schema.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert schema.target == "species"
    assert schema.feature("bill_length_mm").unit == "mm"
    assert schema.examples
    schema.validate_records(schema.examples)


def test_manifest_file_round_trip(example_home: Path, example_manifest: Manifest) -> None:
    path = example_home / "models/penguins/v1" / MANIFEST_FILE
    assert Manifest.from_file(path) == example_manifest


# --- versions and current ---------------------------------------------------------------------


def test_second_save_is_v2_and_becomes_current(example_store_copy: ModelStore) -> None:
    store = example_store_copy
    estimator, manifest = load(v1(store))
    second = store.save(
        name="penguins", schema=manifest.schema_, metrics={}, source="train", estimator=estimator
    )
    assert second.version == "v2"
    assert store.versions("penguins") == ["v1", "v2"]
    assert json.loads(store.current_file.read_text()) == {"name": "penguins", "version": "v2"}
    assert store.current() == store.path("penguins", "v2")
    assert LocalPredictor.from_home(store.home).info().version == "v2"
    verify(v1(store))  # the old version is untouched


def test_save_without_make_current_keeps_the_pointer(example_store_copy: ModelStore) -> None:
    store = example_store_copy
    estimator, manifest = load(v1(store))
    store.save(
        name="penguins",
        schema=manifest.schema_,
        metrics={},
        source="train",
        estimator=estimator,
        make_current=False,
    )
    assert store.current() == v1(store)
    store.set_current("penguins", "v2")
    assert store.current() == store.path("penguins", "v2")


def test_train_example_twice_gives_v2(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert train_example(store).version == "v1"
    assert train_example(store).version == "v2"
    assert store.current() == store.path("penguins", "v2")


def test_versions_sort_numerically(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for n in (1, 2, 9, 10, 11):
        folder = store.path("m", f"v{n}")
        folder.mkdir(parents=True)
        (folder / MANIFEST_FILE).write_text("{}")
    (store.path("m", "v12")).mkdir()  # no manifest: not a version
    assert store.versions("m") == ["v1", "v2", "v9", "v10", "v11"]
    assert store.next_version("m") == "v12"
    assert store.versions("other") == []
    assert store.next_version("other") == "v1"


def test_set_current_refuses_an_unknown_version(example_store_copy: ModelStore) -> None:
    with pytest.raises(ArtifactError, match="penguins:v7"):
        example_store_copy.set_current("penguins", "v7")
    assert example_store_copy.current() == v1(example_store_copy)


def test_no_current_model_says_how_to_get_one(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "empty")
    with pytest.raises(ArtifactError, match="kit train"):
        store.current()
    with pytest.raises(ArtifactError, match="kit train"):
        LocalPredictor.from_home(tmp_path / "empty")


# --- verify and load -------------------------------------------------------------------------


def test_verify_and_load_round_trip(example_home: Path, example_manifest: Manifest) -> None:
    folder = example_home / "models/penguins/v1"
    assert verify(folder) == example_manifest
    estimator, manifest = load(folder)
    assert manifest == example_manifest
    assert [str(c) for c in estimator.classes_] == ["Adelie", "Chinstrap", "Gentoo"]
    assert hasattr(estimator, "predict_proba")


def test_tampered_model_is_refused_without_unpickling(
    example_store_copy: ModelStore, forbid_unpickling: list[Any]
) -> None:
    folder = v1(example_store_copy)
    with (folder / MODEL_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256") as info:
        load(folder)
    assert "was not loaded" in str(info.value)
    with pytest.raises(ArtifactError, match="sha256"):
        LocalPredictor(folder)
    assert forbid_unpickling == []


def test_replaced_model_is_refused(
    example_store_copy: ModelStore, forbid_unpickling: list[Any]
) -> None:
    folder = v1(example_store_copy)
    (folder / MODEL_FILE).write_bytes(b"something else entirely")
    with pytest.raises(ArtifactError, match="sha256"):
        verify(folder)
    assert forbid_unpickling == []


def test_missing_model_file(example_store_copy: ModelStore, forbid_unpickling: list[Any]) -> None:
    folder = v1(example_store_copy)
    (folder / MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load(folder)
    assert forbid_unpickling == []


def test_missing_manifest(example_store_copy: ModelStore) -> None:
    folder = v1(example_store_copy)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match="no manifest"):
        load(folder)


@pytest.mark.parametrize("content", ["{not json", "[]", '{"name": "penguins"}', ""])
def test_invalid_manifest(example_store_copy: ModelStore, content: str) -> None:
    folder = v1(example_store_copy)
    (folder / MANIFEST_FILE).write_text(content)
    with pytest.raises(ArtifactError, match="not valid"):
        verify(folder)


def test_other_sklearn_version_warns_and_still_loads(example_store_copy: ModelStore) -> None:
    folder = v1(example_store_copy)
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["versions"]["scikit-learn"] = "1.0.0"
    path.write_text(json.dumps(data))
    with pytest.warns(ModelVersionWarning, match=r"scikit-learn 1\.0\.0") as record:
        estimator, manifest = load(folder)
    assert "scikit-learn==1.0.0" in str(record[0].message)
    assert manifest.versions["scikit-learn"] == "1.0.0"
    assert hasattr(estimator, "predict")


def test_same_sklearn_version_does_not_warn(example_home: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelVersionWarning)
        load(example_home / "models/penguins/v1")


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["penguins", "my-model_2", "0abc", "a", "a" * 63])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Penguins",
        "-penguins",
        "_penguins",
        "my model",
        "a/b",
        "../penguins",
        "a.b",
        "a" * 64,
        "café",
        "penguins\n",  # '$' also matches before a final newline
    ],
)
def test_invalid_names_are_rejected_with_an_example(name: str) -> None:
    with pytest.raises(ArtifactError) as info:
        check_name(name)
    message = str(info.value)
    assert repr(name) in message
    assert "e.g. 'penguins'" in message


def test_save_checks_the_name_before_writing(tmp_path: Path, example_manifest: Manifest) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(ArtifactError, match=r"e\.g\. 'penguins'"):
        store.save(
            name="../evil",
            schema=example_manifest.schema_,
            metrics={},
            source="train",
            estimator=object(),
        )
    assert not store.models_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_written_by_the_previous_format_loads_with_expected_ranges(
    example_store_copy: ModelStore,
) -> None:
    # Format 1 stored the inferred bounds as minimum/maximum and refused values outside.
    path = v1(example_store_copy) / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["format_version"] = 1
    for feature in data["schema"]["features"]:
        low, high = feature.pop("expected_min"), feature.pop("expected_max")
        feature["minimum"], feature["maximum"] = low, high
    path.write_text(json.dumps(data))
    predictor = LocalPredictor(v1(example_store_copy))  # sha256 covers the model file only
    bill = predictor.schema.feature("bill_length_mm")
    assert bill.minimum is None and bill.expected_max is not None
    assert predictor.manifest.format_version == artifact.FORMAT_VERSION == 2
    record = {**predictor.schema.examples[0], "bill_length_mm": bill.expected_max + 10}
    [prediction] = predictor.predict([record])
    assert prediction.warnings and "bill_length_mm" in prediction.warnings[0]
