"""Annotations: what the user says that the sample cannot (model.annotations), and their use by
`kit import --annotations --holdout` and `kit annotate`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from model.annotations import Annotations, annotate_model, apply_annotations, load_annotations
from model.artifact import MANIFEST_FILE, MODEL_FILE, ModelStore, sha256_of
from model.errors import ArtifactError, InvalidInput, UsageError
from model.importer import import_model
from model.metrics import main_metric
from model.schema import Feature, ModelSchema

PENGUIN_TOML = """
[model]
title = "Penguin species"
description = "Which of three species, from bill and flipper measurements"

[features.bill_length_mm]
description = "Length of the bill"
unit = "mm"
minimum = 0
maximum = 100

[features.flipper_length_mm]
minimum = 150

[features.island]
choices = ["Biscoe", "Dream"]

[features.sex]
required = true

[classes]
Adelie = "Adélie penguin"
"Gentoo" = "Gentoo penguin"
"""

PENGUIN_YAML = """
model:
  title: Penguin species
  description: Which of three species, from bill and flipper measurements
features:
  bill_length_mm: {description: Length of the bill, unit: mm, minimum: 0, maximum: 100}
  flipper_length_mm:
    minimum: 150
  island:
    choices: [Biscoe, Dream]
  sex:
    required: true
classes:
  Adelie: Adélie penguin
  Gentoo: Gentoo penguin
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def schema() -> ModelSchema:
    """A penguins schema as `kit import` infers it: expected ranges, no hard limits."""
    return ModelSchema(
        task="classification",
        classes=["Adelie", "Chinstrap", "Gentoo"],
        features=[
            Feature(
                name="bill_length_mm", kind="number", expected_min=29, expected_max=63, default=44.5
            ),
            Feature(
                name="flipper_length_mm",
                kind="integer",
                expected_min=170,
                expected_max=240,
                default=197,
            ),
            Feature(
                name="island",
                kind="category",
                choices=["Biscoe", "Dream", "Torgersen"],
                default="Torgersen",
            ),
            Feature(
                name="sex",
                kind="category",
                choices=["female", "male"],
                required=False,
                default="male",
            ),
        ],
        examples=[
            {"bill_length_mm": 39.1, "flipper_length_mm": 181, "island": "Torgersen", "sex": None},
            {"bill_length_mm": 46.5, "flipper_length_mm": 192, "island": "Dream", "sex": "female"},
            {"bill_length_mm": 47.5, "flipper_length_mm": 217, "island": "Biscoe", "sex": "male"},
        ],
    )


def annotations_from(tmp_path: Path, text: str, name: str = "notes.toml") -> Annotations:
    return load_annotations(write(tmp_path / name, text))


# --- reading the file -------------------------------------------------------------------------


def test_toml_and_yaml_say_the_same(tmp_path: Path) -> None:
    toml = load_annotations(write(tmp_path / "a.toml", PENGUIN_TOML))
    yaml = load_annotations(write(tmp_path / "a.yaml", PENGUIN_YAML))
    yml = load_annotations(write(tmp_path / "a.yml", PENGUIN_YAML))
    assert toml.model_dump() == yaml.model_dump() == yml.model_dump()
    assert toml.model.title == "Penguin species"
    assert toml.features["bill_length_mm"].minimum == 0
    assert toml.features["island"].choices == ["Biscoe", "Dream"]
    assert toml.classes == {"Adelie": "Adélie penguin", "Gentoo": "Gentoo penguin"}
    assert (toml.source, yaml.source) == ("a.toml", "a.yaml")


def test_yaml_class_labels_written_as_numbers_are_labels(tmp_path: Path) -> None:
    annotations = annotations_from(tmp_path, "classes:\n  0: malignant\n  1: benign\n", "c.yaml")
    assert annotations.classes == {"0": "malignant", "1": "benign"}


def test_an_empty_file_annotates_nothing(tmp_path: Path) -> None:
    assert annotations_from(tmp_path, "", "empty.yaml").summary() == "nothing"
    assert annotations_from(tmp_path, "", "empty.toml").summary() == "nothing"


def test_summary_counts_what_is_set(tmp_path: Path) -> None:
    summary = annotations_from(tmp_path, PENGUIN_TOML).summary()
    assert summary == (
        "title, description, 1 feature described, 1 unit, 3 hard limits, 1 choice list, "
        "1 required flag, 2 class names"
    )


@pytest.mark.parametrize(
    ("text", "key", "allowed", "suggestion"),
    [
        ('[modle]\ntitle = "x"\n', "'modle'", "model, features, classes", "'model'"),
        ('[model]\ntitel = "x"\n', "'titel'", "title, description", "'title'"),
        (
            "[features.bill_length_mm]\nmaximun = 3\n",
            "'maximun'",
            "description, unit, minimum, maximum, required, choices",
            "'maximum'",
        ),
    ],
)
def test_unknown_keys_are_named_with_the_allowed_ones(
    tmp_path: Path, text: str, key: str, allowed: str, suggestion: str
) -> None:
    with pytest.raises(UsageError) as info:
        annotations_from(tmp_path, text)
    message = str(info.value)
    assert f"unknown key {key}" in message and "notes.toml" in message
    assert f"allowed there are {allowed}" in message
    assert f"did you mean {suggestion}?" in message
    assert info.value.exit_code == 2


def test_the_place_of_an_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"""unknown key 'colour' in \[features."bill length"\]"""):
        annotations_from(tmp_path, '[features."bill length"]\ncolour = "red"\n')


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = '[modle]\n[features.x]\nunits = "mm"\n[classes]\nA = 1\n'
    with pytest.raises(UsageError) as info:
        annotations_from(tmp_path, text)
    message = str(info.value)
    assert "'modle'" in message and "'units'" in message
    assert "classes.A in notes.toml must be a valid string, got 1" in message


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[features.bill_length_mm]\nminimum = "zero"\n', "features.bill_length_mm.minimum"),
        ("[features.bill_length_mm]\nminimum = nan\n", "features.bill_length_mm.minimum"),
        ("[features.bill_length_mm]\nmaximum = inf\n", "features.bill_length_mm.maximum"),
        ("[features.sex]\nrequired = 1\n", "features.sex.required"),
        ("[features.island]\nchoices = []\n", "features.island.choices"),
        ('[features.island]\nchoices = ["Biscoe", 3]\n', "features.island.choices[1]"),
        ("[model]\ntitle = 3\n", "model.title"),
        ('features = ["island"]\n', "features"),
    ],
)
def test_wrong_values_name_their_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(UsageError, match="must") as info:
        annotations_from(tmp_path, text)
    assert str(info.value).startswith(f"{named} in notes.toml must ")


def test_yaml_booleans_are_not_texts(tmp_path: Path) -> None:
    # YAML reads an unquoted `no` as false: the error names the key, the user quotes it
    with pytest.raises(UsageError, match=r"features\.smoker\.choices\[1\] in n\.yaml must be"):
        annotations_from(tmp_path, "features:\n  smoker:\n    choices: [yes, no]\n", "n.yaml")


@pytest.mark.parametrize("name", ["notes.json", "notes.ini", "notes"])
def test_other_extensions_are_refused_naming_the_accepted_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match=r"must be TOML or YAML.*\.toml, \.yaml, \.yml"):
        load_annotations(write(tmp_path / name, "{}"))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_annotations(tmp_path / "nowhere.toml")
    with pytest.raises(UsageError, match="is not valid TOML"):
        annotations_from(tmp_path, "[model\ntitle = 'x'\n")
    with pytest.raises(UsageError, match="is not valid YAML"):
        annotations_from(tmp_path, "model: [unclosed\n", "bad.yaml")
    with pytest.raises(UsageError, match="must hold a table"):
        annotations_from(tmp_path, "- a\n- b\n", "list.yaml")


# --- applying them to a schema ----------------------------------------------------------------


def test_apply_returns_a_new_schema_and_leaves_the_input_alone(
    schema: ModelSchema, tmp_path: Path
) -> None:
    before = schema.model_dump()
    annotated = apply_annotations(schema, annotations_from(tmp_path, PENGUIN_TOML))
    assert schema.model_dump() == before
    assert annotated is not schema
    assert all(a is not b for a, b in zip(annotated.features, schema.features, strict=True))
    assert annotated.examples is not schema.examples
    assert annotated != schema


def test_texts_and_class_names_are_applied(schema: ModelSchema, tmp_path: Path) -> None:
    annotated = apply_annotations(schema, annotations_from(tmp_path, PENGUIN_TOML))
    assert annotated.title == "Penguin species"
    assert annotated.description.startswith("Which of three species")
    bill = annotated.feature("bill_length_mm")
    assert (bill.description, bill.unit) == ("Length of the bill", "mm")
    assert annotated.class_names == {"Adelie": "Adélie penguin", "Gentoo": "Gentoo penguin"}
    assert annotated.class_name("Gentoo") == "Gentoo penguin"
    assert annotated.classes == schema.classes  # predictions keep the model's own labels
    # what the annotations do not mention is kept as inferred
    assert annotated.feature("bill_length_mm").expected_min == 29
    assert annotated.feature("flipper_length_mm").description == ""


def test_hard_limits_refuse_while_the_expected_range_only_warns(
    schema: ModelSchema, tmp_path: Path
) -> None:
    annotated = apply_annotations(schema, annotations_from(tmp_path, PENGUIN_TOML))
    bill = annotated.feature("bill_length_mm")
    assert (bill.minimum, bill.maximum, bill.expected_min, bill.expected_max) == (0, 100, 29, 63)
    record = {"bill_length_mm": 80.0, "flipper_length_mm": 200, "island": "Dream", "sex": "male"}
    [clean] = annotated.validate_records([record])  # outside 29-63: predicted, with a warning
    assert any(
        "outside the range seen in the sample" in w for w in annotated.record_warnings(clean)
    )
    with pytest.raises(InvalidInput) as info:
        annotated.validate_records([{**record, "bill_length_mm": -1.0}])
    assert "feature 'bill_length_mm' must be a number between 0 and 100, got -1.0" in str(
        info.value
    )
    with pytest.raises(InvalidInput, match=r"'flipper_length_mm' must be an integer >= 150"):
        annotated.validate_records([{**record, "flipper_length_mm": 140}])


def test_choices_replace_the_inferred_ones_and_required_is_set(
    schema: ModelSchema, tmp_path: Path
) -> None:
    annotated = apply_annotations(schema, annotations_from(tmp_path, PENGUIN_TOML))
    island = annotated.feature("island")
    assert island.choices == ["Biscoe", "Dream"]
    assert island.default == "Biscoe"  # 'Torgersen' is no longer a choice
    assert annotated.feature("sex").required is True
    # the Torgersen example and the one without a sex no longer fit: dropped
    assert [e["island"] for e in annotated.examples] == ["Dream", "Biscoe"]
    annotated.validate_records([*annotated.examples, annotated.defaults()])


def test_defaults_are_moved_inside_the_new_limits(schema: ModelSchema, tmp_path: Path) -> None:
    text = """
    [features.bill_length_mm]
    minimum = 50
    [features.flipper_length_mm]
    minimum = 120.5
    maximum = 180.5
    """
    annotated = apply_annotations(schema, annotations_from(tmp_path, text))
    assert annotated.feature("bill_length_mm").default == 50.0
    assert annotated.feature("flipper_length_mm").default == 180  # an integer within the limits
    annotated.validate_records([annotated.defaults()])


def test_when_no_example_fits_the_defaults_are_the_example(
    schema: ModelSchema, tmp_path: Path
) -> None:
    annotated = apply_annotations(
        schema, annotations_from(tmp_path, "[features.bill_length_mm]\nminimum = 60\n")
    )
    assert annotated.examples == [annotated.defaults()]
    annotated.validate_records(annotated.examples)


def test_annotations_layer(schema: ModelSchema, tmp_path: Path) -> None:
    first = apply_annotations(schema, annotations_from(tmp_path, PENGUIN_TOML))
    second = apply_annotations(
        first, annotations_from(tmp_path, '[features.bill_length_mm]\nunit = "cm"\n', "b.toml")
    )
    bill = second.feature("bill_length_mm")
    assert (bill.unit, bill.description, bill.minimum) == ("cm", "Length of the bill", 0)
    assert second.title == "Penguin species"


def test_unknown_features_are_named_with_the_model_s_features(
    schema: ModelSchema, tmp_path: Path
) -> None:
    annotations = annotations_from(tmp_path, '[features.bill_lenght_mm]\nunit = "mm"\n')
    with pytest.raises(UsageError) as info:
        apply_annotations(schema, annotations)
    message = str(info.value)
    assert "unknown feature 'bill_lenght_mm' in notes.toml" in message
    assert "did you mean 'bill_length_mm'?" in message
    assert "the model's features are 'bill_length_mm', 'flipper_length_mm', 'island', 'sex'" in (
        message
    )


def test_unknown_classes_are_named_with_the_model_s_classes(
    schema: ModelSchema, tmp_path: Path
) -> None:
    annotations = annotations_from(tmp_path, '[classes]\nAdelie = "A"\nEmperor = "E"\n')
    with pytest.raises(UsageError) as info:
        apply_annotations(schema, annotations)
    message = str(info.value)
    assert "unknown class 'Emperor' in [classes] of notes.toml" in message
    assert "'Adelie', 'Chinstrap', 'Gentoo'" in message


def test_a_regressor_has_no_classes(schema: ModelSchema, tmp_path: Path) -> None:
    regression = schema.model_copy(update={"task": "regression", "classes": None})
    with pytest.raises(UsageError, match=r"\[classes\] in notes.toml: a regression model"):
        apply_annotations(regression, annotations_from(tmp_path, '[classes]\n"1" = "one"\n'))


def test_limits_and_choices_must_fit_the_feature_s_kind(
    schema: ModelSchema, tmp_path: Path
) -> None:
    text = """
    [features.bill_length_mm]
    choices = ["short", "long"]
    [features.island]
    minimum = 0
    [features.flipper_length_mm]
    minimum = 200
    maximum = 100
    """
    with pytest.raises(UsageError) as info:
        apply_annotations(schema, annotations_from(tmp_path, text))
    message = str(info.value)  # all three at once, each naming its feature
    assert "[features.bill_length_mm] in notes.toml: choices are only for categories" in message
    assert "[features.island] in notes.toml: minimum/maximum are only for numbers" in message
    assert "[features.flipper_length_mm] in notes.toml: minimum 200 is above maximum 100" in message


def test_a_new_limit_is_checked_against_an_earlier_one(schema: ModelSchema, tmp_path: Path) -> None:
    first = apply_annotations(schema, annotations_from(tmp_path, PENGUIN_TOML))  # bill <= 100
    with pytest.raises(UsageError, match="minimum 120 is above maximum 100"):
        apply_annotations(
            first, annotations_from(tmp_path, "[features.bill_length_mm]\nminimum = 120\n")
        )


# --- kit import --annotations --holdout -------------------------------------------------------

BREAST_TOML = """
[model]
title = "Breast cancer (Wisconsin)"

[features."mean radius"]
description = "Mean distance from the center to points on the perimeter"
unit = "mm"
minimum = 0
maximum = 100

[classes]
"0" = "malignant"
"1" = "benign"
"""


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A RandomForest on the breast-cancer data, its sample, and held-out rows."""
    frame = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.25, random_state=0, stratify=frame.target)
    model = RandomForestClassifier(n_estimators=20, random_state=0)
    model.fit(train.drop(columns="target"), train["target"])
    folder = tmp_path_factory.mktemp("breast-cancer")
    joblib.dump(model, folder / "model.joblib")
    train.sample(150, random_state=0).to_csv(folder / "sample.csv", index=False)
    test.to_csv(folder / "holdout.csv", index=False)
    write(folder / "notes.toml", BREAST_TOML)
    return {
        name: folder / f"{name}.{ext}"
        for name, ext in [
            ("model", "joblib"),
            ("sample", "csv"),
            ("holdout", "csv"),
            ("notes", "toml"),
        ]
    }


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "home")


def test_import_with_annotations_and_a_holdout(
    store: ModelStore, breast_cancer: dict[str, Path]
) -> None:
    report = import_model(
        store,
        breast_cancer["model"],
        breast_cancer["sample"],
        target="target",
        name="breast-cancer",
        annotations=breast_cancer["notes"],
        holdout=breast_cancer["holdout"],
    )
    schema, metrics = report.manifest.schema_, report.manifest.metrics
    assert schema.title == "Breast cancer (Wisconsin)"
    assert schema.class_names == {"0": "malignant", "1": "benign"}
    assert schema.classes == ["0", "1"]
    radius = schema.feature("mean radius")
    assert (radius.unit, radius.minimum, radius.maximum) == ("mm", 0, 100)
    assert set(metrics) == {"n_sample", "holdout_accuracy", "n_holdout"}
    assert metrics["n_holdout"] == len(pd.read_csv(breast_cancer["holdout"]))
    assert 0.85 < metrics["holdout_accuracy"] <= 1.0
    shown = main_metric(metrics)
    assert shown is not None and shown.name == "holdout_accuracy" and not shown.optimistic
    assert any(
        n.startswith("annotations from notes.toml: title, 1 feature described")
        for n in report.notes
    )
    assert not any("overlap" in note for note in report.notes)  # honest metrics: no caveat


def test_holdout_rows_the_schema_refuses_are_counted_not_fatal(
    store: ModelStore, breast_cancer: dict[str, Path], tmp_path: Path
) -> None:
    holdout = pd.read_csv(breast_cancer["holdout"]).astype({"mean radius": object})
    holdout.loc[0, "mean radius"] = -5.0  # below the declared minimum
    holdout.loc[1, "mean radius"] = "big"  # not a number
    holdout.loc[2, "target"] = None  # no label
    path = tmp_path / "holdout.csv"
    holdout.to_csv(path, index=False)
    report = import_model(
        store,
        breast_cancer["model"],
        breast_cancer["sample"],
        target="target",
        annotations=breast_cancer["notes"],
        holdout=path,
    )
    assert report.manifest.metrics["n_holdout"] == len(holdout) - 3
    [refused] = [n for n in report.notes if "schema refuses" in n]
    assert refused.startswith("2 holdout row(s)")
    assert "row 1: feature 'mean radius' must be a number between 0 and 100, got -5.0" in refused
    assert any(n.startswith("1 holdout row(s) without a usable 'target'") for n in report.notes)


def test_a_holdout_without_any_usable_row_is_refused(
    store: ModelStore, breast_cancer: dict[str, Path], tmp_path: Path
) -> None:
    holdout = pd.read_csv(breast_cancer["holdout"]).head(3).assign(**{"mean radius": -1.0})
    holdout.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UsageError, match=r"no row of the holdout .* fits the model's schema"):
        import_model(
            store,
            breast_cancer["model"],
            breast_cancer["sample"],
            target="target",
            annotations=breast_cancer["notes"],
            holdout=tmp_path / "bad.csv",
        )
    assert store.names() == []


def test_a_regression_holdout_gives_r2_and_mae(store: ModelStore, tmp_path: Path) -> None:
    frame = load_diabetes(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.3, random_state=0)
    joblib.dump(Ridge().fit(train.drop(columns="target"), train["target"]), tmp_path / "m.joblib")
    train.to_csv(tmp_path / "sample.csv", index=False)
    test.to_csv(tmp_path / "holdout.csv", index=False)
    report = import_model(
        store,
        tmp_path / "m.joblib",
        tmp_path / "sample.csv",
        target="target",
        holdout=tmp_path / "holdout.csv",
    )
    metrics = report.manifest.metrics
    assert set(metrics) == {"n_sample", "holdout_r2", "holdout_mae", "n_holdout"}
    assert 0.2 < metrics["holdout_r2"] < 1.0 and metrics["n_holdout"] == len(test)


def test_without_a_holdout_the_sample_metrics_and_their_caveat_stay(
    store: ModelStore, breast_cancer: dict[str, Path]
) -> None:
    report = import_model(store, breast_cancer["model"], breast_cancer["sample"], target="target")
    assert set(report.manifest.metrics) == {"n_sample", "sample_accuracy"}
    assert any("may overlap the training data" in note for note in report.notes)


def test_sample_rows_that_break_the_annotations_are_noted(
    store: ModelStore, breast_cancer: dict[str, Path], tmp_path: Path
) -> None:
    notes = write(tmp_path / "tight.toml", '[features."mean radius"]\nmaximum = 15\n')
    report = import_model(
        store, breast_cancer["model"], breast_cancer["sample"], target="target", annotations=notes
    )
    [note] = [n for n in report.notes if "break the annotations" in n]
    assert "of the 150 sample rows" in note and "tight.toml" in note
    assert report.manifest.schema_.feature("mean radius").default <= 15


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"holdout": "holdout"}, "--holdout needs --target"),
        ({"target": "target", "holdout": "nowhere.csv"}, "holdout file .* does not exist"),
        ({"annotations": "nowhere.toml"}, "annotations file .* does not exist"),
    ],
)
def test_usage_errors_of_import(
    store: ModelStore,
    breast_cancer: dict[str, Path],
    tmp_path: Path,
    option: dict[str, str],
    message: str,
) -> None:
    paths = {
        k: (breast_cancer[v] if v in breast_cancer else tmp_path / v)
        for k, v in option.items()
        if k != "target"
    }
    with pytest.raises(UsageError, match=message):
        import_model(
            store,
            breast_cancer["model"],
            breast_cancer["sample"],
            target=option.get("target"),
            **paths,
        )
    assert store.names() == []


def test_bad_annotations_save_nothing(
    store: ModelStore, breast_cancer: dict[str, Path], tmp_path: Path
) -> None:
    notes = write(tmp_path / "typo.toml", '[features."mean radiuss"]\nunit = "mm"\n')
    with pytest.raises(
        UsageError, match=r"unknown feature 'mean radiuss'.*did you mean 'mean radius'"
    ):
        import_model(store, breast_cancer["model"], breast_cancer["sample"], annotations=notes)
    assert store.names() == []


# --- kit annotate -----------------------------------------------------------------------------


def test_annotate_makes_a_new_version_with_the_same_model_file(
    store: ModelStore, breast_cancer: dict[str, Path], tmp_path: Path
) -> None:
    first = import_model(
        store, breast_cancer["model"], breast_cancer["sample"], target="target", name="bc"
    ).manifest
    v1_manifest = (store.path("bc", "v1") / MANIFEST_FILE).read_bytes()
    done = annotate_model(store, "bc", None, breast_cancer["notes"])
    new = done.manifest
    assert (done.source.version, new.version, new.source) == ("v1", "v2", "annotate")
    assert new.sha256 == first.sha256 == sha256_of(store.path("bc", "v2") / MODEL_FILE)
    assert new.metrics == first.metrics and new.versions == first.versions
    assert new.schema_.class_names == {"0": "malignant", "1": "benign"}
    assert store.current() == store.path("bc", "v2")
    assert (store.path("bc", "v1") / MANIFEST_FILE).read_bytes() == v1_manifest  # immutable
    assert done.summary == "title, 1 feature described, 1 unit, 2 hard limits, 2 class names"
    # layered on a chosen version
    more = write(tmp_path / "more.yaml", "features:\n  worst radius: {unit: mm}\n")
    third = annotate_model(store, "bc", "v2", more).manifest
    assert third.schema_.feature("worst radius").unit == "mm"
    assert third.schema_.title == "Breast cancer (Wisconsin)"
    saved = json.loads((store.path("bc", "v3") / MANIFEST_FILE).read_text())
    assert saved["source"] == "annotate" and saved["sha256"] == first.sha256


def test_annotate_refuses_what_it_cannot_do(
    store: ModelStore, breast_cancer: dict[str, Path], tmp_path: Path
) -> None:
    import_model(store, breast_cancer["model"], breast_cancer["sample"], name="bc")
    with pytest.raises(UsageError, match=r"no model named 'cancer'.*the models are bc"):
        annotate_model(store, "cancer", None, breast_cancer["notes"])
    with pytest.raises(UsageError, match="bc has no version 'v7'; its versions are v1"):
        annotate_model(store, "bc", "v7", breast_cancer["notes"])
    with pytest.raises(UsageError, match="annotates nothing"):
        annotate_model(store, "bc", None, write(tmp_path / "empty.toml", ""))
    with (store.path("bc", "v1") / MODEL_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="changed since it was saved"):
        annotate_model(store, "bc", None, breast_cancer["notes"])
    assert store.versions("bc") == ["v1"]
