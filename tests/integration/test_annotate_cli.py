"""`kit import --annotations --holdout` and `kit annotate`, as users run them: real subprocesses,
a private KIT_HOME, a breast-cancer RandomForest trained here (the data ships with scikit-learn)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from tests.helpers import KIT, ROOT, kit_env, run_kit

ANNOTATIONS = """\
[model]
title = "Breast cancer (Wisconsin)"
description = "Is a breast mass malignant? From measurements of a fine-needle aspirate."

[features."mean radius"]
description = "Mean distance from the center to points on the perimeter"
unit = "mm"
minimum = 0
maximum = 100

[features."mean texture"]
description = "Standard deviation of gray-scale values"

[features."worst area"]
description = "Largest cell area"
unit = "mm²"

[classes]
"0" = "malignant"
"1" = "benign"
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    frame = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.25, random_state=0, stratify=frame.target)
    model = RandomForestClassifier(n_estimators=30, random_state=0)
    model.fit(train.drop(columns="target"), train["target"])
    folder = tmp_path_factory.mktemp("breast-cancer")
    joblib.dump(model, folder / "breast-cancer.joblib")
    train.sample(200, random_state=0).to_csv(folder / "sample.csv", index=False)
    test.to_csv(folder / "holdout.csv", index=False)
    (folder / "annotations.toml").write_text(ANNOTATIONS)
    return {
        "model": folder / "breast-cancer.joblib",
        "sample": folder / "sample.csv",
        "holdout": folder / "holdout.csv",
        "annotations": folder / "annotations.toml",
        "folder": folder,
    }


def _import(files: dict[str, Path], annotations: Path | None = None) -> list[str]:
    return [
        "import",
        str(files["model"]),
        "--sample",
        str(files["sample"]),
        "--target",
        "target",
        "--annotations",
        str(annotations or files["annotations"]),
        "--holdout",
        str(files["holdout"]),
    ]


def test_import_annotate_predict(files: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "kit"
    imported = run_kit(*_import(files), home=home, check=True)
    assert "imported breast-cancer:v1 (classification)" in imported.stderr
    assert "annotations from annotations.toml: title, description, 3 features described" in (
        imported.stderr
    )
    assert "overlap" not in imported.stderr  # metrics on held-out rows: no caveat

    status = json.loads(run_kit("status", "--json", home=home, check=True).stdout)
    assert (status["name"], status["version"]) == ("breast-cancer", "v1")
    metrics = status["metrics"]
    assert 0.85 < metrics["holdout_accuracy"] <= 1.0
    assert metrics["n_holdout"] == 143 and not any(k.startswith("sample_") for k in metrics)

    manifest = json.loads((home / "models/breast-cancer/v1/manifest.json").read_text())
    schema = manifest["schema"]
    assert schema["title"] == "Breast cancer (Wisconsin)"
    assert schema["description"].startswith("Is a breast mass malignant?")
    assert schema["class_names"] == {"0": "malignant", "1": "benign"}
    radius = next(f for f in schema["features"] if f["name"] == "mean radius")
    assert radius["description"].startswith("Mean distance") and radius["unit"] == "mm"
    assert (radius["minimum"], radius["maximum"]) == (0, 100)
    assert radius["expected_min"] > 0  # the range seen in the sample stays, as an expectation

    record = dict(schema["examples"][0])
    predicted = json.loads(
        run_kit("predict", "--json", json.dumps(record), home=home, check=True).stdout
    )
    assert predicted["label"] in ("0", "1")  # the model's own labels, not the display names
    assert set(predicted["probabilities"]) == {"0", "1"}

    refused = run_kit("predict", "--json", json.dumps({**record, "mean radius": -1.0}), home=home)
    assert refused.returncode == 2
    assert "feature 'mean radius' must be a number between 0 and 100, got -1.0" in refused.stderr

    more = files["folder"] / "more.yaml"
    more.write_text(
        "features:\n  worst radius: {unit: mm, minimum: 0}\nclasses:\n  1: benign mass\n"
    )
    annotated = run_kit("annotate", "breast-cancer", str(more), home=home, check=True)
    assert "annotated breast-cancer:v2 (now current) from v1" in annotated.stderr
    assert "1 unit, 1 hard limit, 1 class name" in annotated.stderr
    v1 = json.loads((home / "models/breast-cancer/v1/manifest.json").read_text())
    v2 = json.loads((home / "models/breast-cancer/v2/manifest.json").read_text())
    assert v2["sha256"] == v1["sha256"] and v2["source"] == "annotate"
    assert v2["metrics"] == v1["metrics"]
    assert v2["schema"]["class_names"] == {"0": "malignant", "1": "benign mass"}
    assert v2["schema"]["title"] == "Breast cancer (Wisconsin)"  # layered on v1's
    assert (home / "models/breast-cancer/v1/model.joblib").read_bytes() == (
        home / "models/breast-cancer/v2/model.joblib"
    ).read_bytes()
    status = json.loads(run_kit("status", "--json", home=home, check=True).stdout)
    assert (status["version"], status["sha256_ok"]) == ("v2", True)
    again = run_kit("predict", "--json", json.dumps(record), home=home, check=True)
    assert json.loads(again.stdout)["model_version"] == "v2"


def test_annotations_with_typos_exit_2_naming_them(files: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "kit"
    unknown_feature = files["folder"] / "typo-feature.toml"
    unknown_feature.write_text('[features."mean radiuss"]\nunit = "mm"\n')
    result = run_kit(*_import(files, unknown_feature), home=home)
    assert result.returncode == 2, result.stderr
    assert "unknown feature 'mean radiuss' in typo-feature.toml" in result.stderr
    assert "did you mean 'mean radius'?" in result.stderr
    assert not (home / "models").exists()  # nothing saved

    run_kit(*_import(files), home=home, check=True)
    unknown_key = files["folder"] / "typo-key.yaml"
    unknown_key.write_text("features:\n  mean radius:\n    maximun: 30\n")
    result = run_kit("annotate", "breast-cancer:v1", str(unknown_key), home=home)
    assert result.returncode == 2, result.stderr
    assert "unknown key 'maximun' in [features.\"mean radius\"] of typo-key.yaml" in result.stderr
    assert "did you mean 'maximum'?" in result.stderr
    assert not (home / "models/breast-cancer/v2").exists()


def test_missing_input_files_are_usage_errors(files: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "kit"
    missing = run_kit("import", str(tmp_path / "nowhere.joblib"), "--sample", "x.csv", home=home)
    assert missing.returncode == 2 and "model file" in missing.stderr
    assert "does not exist" in missing.stderr
    no_target = run_kit(
        "import",
        str(files["model"]),
        "--sample",
        str(files["sample"]),
        "--holdout",
        str(files["holdout"]),
        home=home,
    )
    assert no_target.returncode == 2 and "--holdout needs --target" in no_target.stderr


def test_the_readme_s_annotate_section_runs(files: dict[str, Path], tmp_path: Path) -> None:
    """The README's example file and its two commands, run as written in a folder of files."""
    section = (ROOT / "README.md").read_text().split("### Annotate your model", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    commands = section.split("```bash\n", 1)[1].split("```", 1)[0]
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copyfile(files["model"], folder / "cancer.joblib")
    shutil.copyfile(files["sample"], folder / "sample.csv")
    shutil.copyfile(files["holdout"], folder / "heldout.csv")
    (folder / "annotations.toml").write_text(example)
    (folder / "more.yaml").write_text('features:\n  "mean texture": {description: Gray-scale}\n')
    env = kit_env(tmp_path / "kit", PATH=f"{Path(KIT[0]).parent}:{os.environ['PATH']}")
    for line in commands.splitlines():
        command = line.split("  #")[0].strip()
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
    manifest = json.loads((tmp_path / "kit/models/cancer/v2/manifest.json").read_text())
    schema = manifest["schema"]
    assert (
        schema["title"] == "Breast cancer (Wisconsin)" and "holdout_accuracy" in manifest["metrics"]
    )
    units = {f["name"]: f["unit"] for f in schema["features"] if f["unit"]}
    assert units == {"mean radius": "mm", "worst area": "mm²"}
