"""The model you selected is the model that answers: `kit models` lists every model, `kit use`
switches, and a promoted service that serves another model is never used silently."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from model.artifact import ModelStore
from tests.helpers import BODY_MASS, GENTOO, ROOT, Promoted, promote, run_kit, stop_promoted

NOTE = "note: the promoted service answers with"


@dataclass
class Selection:
    """penguins:v1 promoted, then body-mass:v1 imported: the service serves another model."""

    home: Path
    service: Promoted
    imported: subprocess.CompletedProcess[str]


def import_body_mass(home: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """The README's second model: `scripts/example_regressor.py`, then `kit import`."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/example_regressor.py"), "--out", str(folder)],
        capture_output=True,
        check=True,
    )
    return run_kit(
        "import",
        str(folder / "regressor.joblib"),
        "--sample",
        str(folder / "sample.csv"),
        "--target",
        "body_mass_g",
        "--name",
        "body-mass",
        home=home,
        check=True,
    )


@pytest.fixture(scope="module")
def selection(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Selection]:
    """One service for the module (a promote takes ~10 s); tests must not stop or replace it."""
    root = tmp_path_factory.mktemp("selection")
    home = root / "kit"
    shutil.copytree(trained_home, home)
    service = promote(home)
    try:
        yield Selection(home, service, import_body_mass(home, root / "body-mass"))
    finally:
        stop_promoted(service)


@pytest.fixture
def mismatched(selection: Selection) -> Selection:
    """The shared home with body-mass:v1 current again (a test may have switched)."""
    ModelStore(selection.home).set_current("body-mass", "v1")
    return selection


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(NOTE)]


def test_models_lists_every_model_and_marks_current_and_served(mismatched: Selection) -> None:
    rows = _lines(run_kit("models", "--json", home=mismatched.home, check=True).stdout)
    assert [(r["name"], r["version"], r["current"], r["serving"]) for r in rows] == [
        ("body-mass", "v1", True, False),
        ("penguins", "v1", False, True),
    ]
    body_mass, penguins = (r["main_metric"] for r in rows)
    assert isinstance(body_mass, dict) and isinstance(penguins, dict)
    assert (body_mass["name"], body_mass["optimistic"]) == ("sample_r2", True)
    assert (penguins["name"], penguins["optimistic"]) == ("test_accuracy", False)

    table = run_kit("models", home=mismatched.home, check=True).stdout
    assert f"r2 {body_mass['value']:.3f} (sample)" in table
    assert f"accuracy {penguins['value']:.3f} " in table
    assert "current" in table and "served" in table
    assert "(sample): measured on the import sample, which may include training rows" in table


def test_import_notes_that_the_service_serves_another_model(selection: Selection) -> None:
    stderr = selection.imported.stderr
    assert "imported body-mass:v1" in stderr
    [note] = _notes(stderr)  # one line, after the success line
    assert stderr.index("imported body-mass:v1") < stderr.index(NOTE)
    assert "penguins:v1, not the current model body-mass:v1" in note
    assert "`kit promote` makes it answer with body-mass:v1" in note
    assert "`kit use penguins:v1` goes back" in note


def test_auto_says_so_in_one_line_and_answers_with_the_current_model(
    mismatched: Selection,
) -> None:
    result = run_kit("predict", "--json", json.dumps(BODY_MASS), home=mismatched.home, check=True)
    [prediction] = _lines(result.stdout)
    assert set(prediction) == {"value", "model_version"}
    [note] = _notes(result.stderr)
    assert "not the current model body-mass:v1: using the local model" in note
    assert "`kit promote`" in note
    assert "unknown field" not in result.stderr


def test_remote_refuses_naming_both_models_and_the_fix(mismatched: Selection) -> None:
    result = run_kit(
        "predict", "--backend", "remote", "--json", json.dumps(BODY_MASS), home=mismatched.home
    )
    assert result.returncode == 4, result.stderr  # the service for this model is unavailable
    assert result.stdout == ""
    assert "answers with penguins:v1, not the current model body-mass:v1" in result.stderr
    assert mismatched.service.url in result.stderr and "`kit promote`" in result.stderr
    assert "--backend local" in result.stderr


def test_status_shows_the_mismatch_and_labels_sample_metrics(mismatched: Selection) -> None:
    report = json.loads(run_kit("status", "--json", home=mismatched.home, check=True).stdout)
    assert report["backend"] == "local"  # what `auto` uses
    assert report["service"]["model_in_service"] == "penguins:v1"
    mismatch = report["mismatch"]
    assert (mismatch["served"], mismatch["current"], mismatch["command"]) == (
        "penguins:v1",
        "body-mass:v1",
        "kit promote",
    )
    assert report["main_metric"]["optimistic"] is True

    table = run_kit("status", home=mismatched.home, check=True, COLUMNS="400").stdout
    assert "mismatch" in table and "not the current model body-mass:v1" in table
    assert "on the import sample, which may include training rows): optimistic" in table


def test_use_goes_back_to_the_served_model_and_away_again(mismatched: Selection) -> None:
    home = mismatched.home
    back = run_kit("use", "penguins", home=home, check=True)
    assert "current model: penguins:v1" in back.stderr and "note:" not in back.stderr
    for backend in ("local", "auto"):  # auto: the service again, as it serves penguins:v1
        result = run_kit("predict", "-b", backend, "--json", json.dumps(GENTOO), home=home)
        assert result.returncode == 0, result.stderr
        assert _lines(result.stdout)[0]["label"] == "Gentoo" and NOTE not in result.stderr
    assert json.loads(run_kit("status", "--json", home=home, check=True).stdout)["mismatch"] is None

    away = run_kit("use", "body-mass:v1", home=home, check=True)
    [note] = _notes(away.stderr)
    assert "current model: body-mass:v1" in away.stderr and "`kit promote`" in note


def test_use_an_unknown_model_or_version_names_what_exists(mismatched: Selection) -> None:
    unknown = run_kit("use", "nosuch", home=mismatched.home)
    assert unknown.returncode == 2
    assert "no model 'nosuch'" in unknown.stderr
    assert "models: body-mass (v1); penguins (v1)" in unknown.stderr
    version = run_kit("use", "penguins:v9", home=mismatched.home)
    assert version.returncode == 2 and "no version 'v9' of penguins; versions: v1" in (
        version.stderr
    )
    current = json.loads((mismatched.home / "current.json").read_text())
    assert current == {"name": "body-mass", "version": "v1"}  # unchanged


def test_use_refuses_a_tampered_artifact(kit_home: Path) -> None:
    with (kit_home / "models/penguins/v1/model.joblib").open("ab") as handle:
        handle.write(b"\0")
    (kit_home / "current.json").unlink()
    result = run_kit("use", "penguins", home=kit_home)
    assert result.returncode == 3 and "sha256" in result.stderr
    assert not (kit_home / "current.json").exists()


def test_a_new_version_while_the_old_one_is_served_says_publish(
    selection: Selection, tmp_path: Path
) -> None:
    """`kit train` makes penguins:v2 while the service answers with v1: same inputs, so
    `kit publish`; until then auto answers with v2 in-process. (A copy of the home, whose
    state file names the shared service; nothing here calls or stops it.)"""
    home = tmp_path / "kit"
    shutil.copytree(selection.home, home, ignore=shutil.ignore_patterns("bentoml", "logs"))
    ModelStore(home).set_current("penguins", "v1")
    trained = run_kit("train", home=home, check=True)
    [note] = _notes(trained.stderr)
    assert "penguins:v1, not the current model penguins:v2" in note
    assert "`kit publish` makes it answer with penguins:v2 (same inputs: no restart)" in note

    result = run_kit("predict", "--json", json.dumps(GENTOO), home=home, check=True)
    assert _lines(result.stdout)[0]["model_version"] == "v2"
    [note] = _notes(result.stderr)
    assert "using the local model" in note and "`kit publish`" in note
