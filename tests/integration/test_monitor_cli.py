"""`kit monitor` end to end: the trained example's reference data, a log written by the real
PredictionLog with the example's real answers, the real `kit` CLI."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from app_production.prediction_log import LoggedPrediction, PredictionLog
from model.artifact import REFERENCE_FILE, ModelStore
from model.predictor import LocalPredictor
from tests.helpers import run_kit
from tests.integration.test_cli_ux import _lone_words

SHIFTED = "bill_length_mm"


def records(home: Path, n: int = 200, seed: int = 7, shift: float = 0.0) -> list[dict[str, Any]]:
    """`n` records drawn from the model's reference data (another seed than the reference),
    `SHIFTED` moved by `shift` standard deviations."""
    reference = ModelStore(home).reference("penguins", "v1")
    assert reference is not None
    rows = reference.sample(n=n, replace=True, random_state=seed).copy()
    rows[SHIFTED] = rows[SHIFTED] + shift * reference[SHIFTED].std()
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
        for r in rows.astype(object).where(rows.notna(), None).to_dict("records")
    ]


def write_log(home: Path, batch: list[dict[str, Any]], *, age_s: float = 60.0) -> Path:
    """The example's real answers to `batch`, logged `age_s` seconds ago by PredictionLog."""
    folder = home / "prediction-log"
    answers = LocalPredictor.from_home(home).predict(batch)
    now = time.time() - age_s
    log = PredictionLog(folder, seed=0)
    log.submit(
        [
            LoggedPrediction(
                ts=now + i * 0.01,
                model="penguins",
                version="v1",
                latency_ms=2.0 + i % 10,
                record=record,
                prediction=answer.to_json(),
                warnings=answer.warnings or [],
            )
            for i, (record, answer) in enumerate(zip(batch, answers, strict=True))
        ]
    )
    log.close()
    assert log.stats()["written"] == len(batch), log.stats()
    return folder


def test_an_unshifted_log_is_no_drift(kit_home: Path) -> None:
    write_log(kit_home, records(kit_home))
    result = run_kit("monitor", home=kit_home, KIT_PREDICTION_LOG="on")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "penguins: 200 prediction(s) in the last 24h" in result.stdout
    assert "no drift beyond the thresholds" in result.stdout
    report = kit_home / "monitor" / "report.html"
    assert f"report: {report}" in result.stderr
    assert report.is_file()


def test_a_shifted_feature_exits_8_and_is_named_first(kit_home: Path, tmp_path: Path) -> None:
    folder = write_log(kit_home, records(kit_home, shift=2.0))
    page = tmp_path / "drift.html"
    result = run_kit("monitor", "--log", str(folder), "--out", str(page), home=kit_home)
    assert result.returncode == 8, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("drift in 1 feature(s)")
    assert lines[2].strip().startswith(f"{SHIFTED}: PSI ")
    assert "drift" in lines[2]
    html = page.read_text()
    assert '<img src="data:image/png;base64,' in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", html)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert f"<td>{SHIFTED}</td>" in html


def test_json_is_the_report_as_data(kit_home: Path) -> None:
    folder = write_log(kit_home, records(kit_home, shift=2.0))
    result = run_kit("monitor", "--log", str(folder), "--json", home=kit_home)
    assert result.returncode == 8, result.stderr
    data = json.loads(result.stdout)
    assert data["drifted"] == [SHIFTED]
    assert data["rows"] == 200 and data["model"] == "penguins"
    assert data["thresholds"]["psi"] == 0.25
    [version] = data["versions"]
    features = version["drift"]["features"]
    assert features[0]["name"] == SHIFTED and features[0]["verdict"] == "drift"
    assert abs(sum(version["predictions"]["shares"].values()) - 1.0) < 1e-9
    assert set(version["latency_ms"]) == {"n", "p50", "p95", "p99"}
    assert Path(data["report"]).is_file()
    # a laxer threshold: the same log is no drift
    lax = run_kit(
        "monitor", "--log", str(folder), "--psi", "100", "--out-of-range", "1", "--json",
        home=kit_home,
    )  # fmt: skip
    assert lax.returncode == 0, lax.stderr
    assert json.loads(lax.stdout)["drifted"] == []


def test_since_leaves_old_rows_out_and_says_how_to_log(kit_home: Path) -> None:
    folder = write_log(kit_home, records(kit_home), age_s=2 * 86400)
    result = run_kit("monitor", "--since", "1h", "--log", str(folder), home=kit_home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"no predictions logged in the last 1h under {folder}: is the service logging? "
        "KIT_PREDICTION_LOG=on"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    older = run_kit("monitor", "--since", "3d", "--log", str(folder), home=kit_home)
    assert older.returncode == 0, older.stderr


def test_an_artifact_without_reference_data_names_the_fix(kit_home: Path) -> None:
    folder = write_log(kit_home, records(kit_home))
    (ModelStore(kit_home).path("penguins", "v1") / REFERENCE_FILE).unlink()  # an older artifact
    result = run_kit("monitor", "--log", str(folder), home=kit_home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no reference data for penguins:v1: train or import it again with this kit" in (
        result.stderr
    )


@pytest.mark.parametrize("since", ["yesterday", "5 parsecs"])
def test_a_bad_since_is_a_usage_error(kit_home: Path, since: str) -> None:
    result = run_kit("monitor", "--since", since, home=kit_home)
    assert result.returncode == 2
    assert "--since must be a duration like 30m, 1h, 2d" in result.stderr


def test_help_teaches_with_an_example_at_80_columns(tmp_path: Path) -> None:
    result = run_kit("monitor", "--help", home=tmp_path / "kit", COLUMNS="80")
    assert result.returncode == 0, result.stderr
    assert "Examples: kit monitor" in " ".join(result.stdout.split())
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert not _lone_words(result.stdout), result.stdout
    top = run_kit("--help", home=tmp_path / "kit", COLUMNS="200")
    assert "monitor" in top.stdout and "8 `kit monitor` found drift" in top.stdout


def test_reference_data_is_the_training_inputs(kit_home: Path) -> None:
    reference = ModelStore(kit_home).reference("penguins", "v1")
    assert isinstance(reference, pd.DataFrame)
    assert list(reference.columns) == [
        "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex",
    ]  # fmt: skip
    assert len(reference) == 258  # the training split: 75% of the 344 penguins


def test_import_keeps_the_samples_inputs_and_annotate_copies_them(
    regression_home: Path, kit_home: Path, tmp_path: Path
) -> None:
    from model.annotations import annotate_model

    store = ModelStore(regression_home)
    imported = store.reference("body-mass", "v1")
    manifest = json.loads((store.path("body-mass", "v1") / "manifest.json").read_text())
    assert imported is not None and len(imported) == 80  # the sample's rows
    assert list(imported.columns) == [f["name"] for f in manifest["schema"]["features"]]
    assert "body_mass_g" not in imported.columns  # the target is no input
    notes = tmp_path / "notes.toml"
    notes.write_text('[model]\ntitle = "Penguins"\n')
    done = annotate_model(ModelStore(kit_home), "penguins", None, notes)
    folder = ModelStore(kit_home).path("penguins", "v1")
    copied = ModelStore(kit_home).path("penguins", done.manifest.version)
    assert (copied / REFERENCE_FILE).read_bytes() == (folder / REFERENCE_FILE).read_bytes()
