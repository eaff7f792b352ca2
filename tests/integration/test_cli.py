"""The `kit` command as users run it: real subprocesses, real files, loopback only."""

from __future__ import annotations

import json
import re
import secrets
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    BODY_MASS,
    GENTOO,
    ROOT,
    closed_port,
    fake_frpc_home,
    free_port,
    http_get,
    run_kit,
    start_kit,
)

# What Gradio prints about a failed share link: its own sentence, the tunnel client's log,
# frpc download steps and its "Closing server" (then the kit's fallback relaunch).
SHARING_TEXT = re.compile(r"share|tunnel|frpc|login to server|closing server", re.IGNORECASE)


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_train_writes_versions_and_status_reports_them(tmp_path: Path) -> None:
    home = tmp_path / "kit"
    first = run_kit("train", home=home, check=True)
    assert "penguins:v1" in first.stderr and "held-out accuracy" in first.stderr
    run_kit("train", home=home, check=True)
    status = json.loads(run_kit("status", "--json", home=home, check=True).stdout)
    assert (status["name"], status["version"], status["sha256_ok"]) == ("penguins", "v2", True)
    assert status["metrics"]["test_accuracy"] > status["metrics"]["test_baseline_accuracy"]
    manifest = json.loads((home / "models/penguins/v2/manifest.json").read_text())
    assert set(manifest) >= {
        "name",
        "version",
        "sha256",
        "versions",
        "metrics",
        "schema",
        "created_at",
    }


def test_predict_one_record_or_a_list(kit_home: Path) -> None:
    one = run_kit("predict", "--json", json.dumps(GENTOO), home=kit_home, check=True)
    assert _lines(one.stdout)[0]["label"] == "Gentoo"
    many = run_kit(
        "predict", "--json", json.dumps([GENTOO, {"island": "Dream"}]), home=kit_home, check=True
    )
    predictions = _lines(many.stdout)
    assert len(predictions) == 2
    assert all(set(p) == {"label", "probabilities", "model_version"} for p in predictions)


def test_invalid_input_exits_2_naming_fields(kit_home: Path) -> None:
    bad = {**GENTOO, "island": 3, "body_mass_g": "heavy", "wings": 2}
    result = run_kit("predict", "--json", json.dumps(bad), home=kit_home)
    assert result.returncode == 2
    assert (
        "feature 'island' must be a text, usually one of 'Biscoe', 'Dream', 'Torgersen', got 3"
        in result.stderr
    )
    assert "feature 'body_mass_g' must be an integer, got 'heavy'" in result.stderr
    assert "unknown field 'wings'" in result.stderr
    assert result.stdout == ""
    malformed = run_kit("predict", "--json", "{island: Dream", home=kit_home)
    assert malformed.returncode == 2 and "not valid JSON" in malformed.stderr


def test_an_unusual_record_is_predicted_with_its_warnings(kit_home: Path) -> None:
    unusual = {**GENTOO, "island": "Atlantis", "flipper_length_mm": 238}
    result = run_kit("predict", "--json", json.dumps(unusual), home=kit_home, check=True)
    [prediction] = _lines(result.stdout)
    assert prediction["label"] in ("Adelie", "Chinstrap", "Gentoo")
    fields = [w.split(" ", 1)[0] for w in prediction["warnings"]]
    assert fields == ["island", "flipper_length_mm"]
    assert "flipper_length_mm 238 is outside the range seen in the sample" in result.stdout


def test_tampered_artifact_is_refused(kit_home: Path) -> None:
    with (kit_home / "models/penguins/v1/model.joblib").open("ab") as handle:
        handle.write(b"\0")
    result = run_kit("predict", "--json", json.dumps(GENTOO), home=kit_home)
    assert result.returncode == 3
    assert "sha256" in result.stderr and "re-import" in result.stderr
    status = run_kit("status", home=kit_home)
    assert status.returncode == 3 and "MISMATCH" in status.stdout


def test_no_model_yet_says_what_to_run(tmp_path: Path) -> None:
    result = run_kit("predict", "--json", json.dumps(GENTOO), home=tmp_path / "empty")
    assert result.returncode == 3 and "kit train" in result.stderr


def test_remote_backend_without_promotion_is_unavailable(kit_home: Path) -> None:
    result = run_kit("predict", "--backend", "remote", "--json", json.dumps(GENTOO), home=kit_home)
    assert result.returncode == 4 and "kit promote" in result.stderr


def test_import_a_regressor_then_predict(tmp_path: Path) -> None:
    """A second, different model: the user's own regression Pipeline, no code written."""
    made = tmp_path / "made"
    script = ROOT / "scripts/example_regressor.py"
    result = __import__("subprocess").run(
        [sys.executable, str(script), "--out", str(made)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "regressor.joblib" in result.stdout
    home = tmp_path / "kit"
    imported = run_kit(
        "import",
        str(made / "regressor.joblib"),
        "--sample",
        str(made / "sample.csv"),
        "--target",
        "body_mass_g",
        "--name",
        "body-mass",
        home=home,
        check=True,
    )
    assert "body-mass:v1 (regression)" in imported.stderr
    status = json.loads(run_kit("status", "--json", home=home, check=True).stdout)
    assert status["task"] == "regression" and "sample_r2" in status["metrics"]
    record = BODY_MASS
    prediction = _lines(
        run_kit("predict", "--json", json.dumps(record), home=home, check=True).stdout
    )[0]
    assert set(prediction) == {"value", "model_version"}
    assert 4000 < float(prediction["value"]) < 6500  # a Gentoo male weighs about 5.5 kg
    wrong = run_kit("predict", "--json", json.dumps({**record, "body_mass_g": 5000}), home=home)
    assert wrong.returncode == 2 and "unknown field 'body_mass_g'" in wrong.stderr


@pytest.mark.parametrize(
    "args",
    [["--share"], ["--host", "0.0.0.0"], ["--ui", "streamlit", "--share"]],
    ids=["share", "all-interfaces", "streamlit-share"],
)
def test_serving_beyond_localhost_needs_credentials(kit_home: Path, args: list[str]) -> None:
    result = run_kit("demo", *args, home=kit_home)
    assert result.returncode == 2
    assert "without credentials" in result.stderr and "--auth USER:PASS" in result.stderr


def test_bad_auth_value_is_refused(kit_home: Path) -> None:
    result = run_kit("demo", "--auth", "no-colon-here", home=kit_home)
    assert result.returncode == 2 and "USER:PASS" in result.stderr
    assert "no-colon-here" not in result.stderr  # never echo a credential


def test_gradio_share_failure_falls_back_to_the_lan(
    kit_home: Path, tmp_path: Path, output_dir: Path
) -> None:
    """No share link (the tunnel server refuses): one line says so, the demo serves on the LAN
    address (127.0.0.2 stands in for 0.0.0.0), still behind the credentials."""
    password = secrets.token_urlsafe(12)
    port = free_port()
    server = start_kit(
        "demo",
        "--share",
        "--share-server",
        f"127.0.0.1:{closed_port()}",
        "--port",
        str(port),
        "--auth",
        f"tester:{password}",
        home=kit_home,
        log=output_dir / "demo.log",
        HF_HOME=str(fake_frpc_home(tmp_path)),
        KIT_LAN_HOST="127.0.0.2",
    )
    try:
        server.wait_for(r"On your network: http://127\.0\.0\.2:\d+/")
        log = server.output()
        about_sharing = [line for line in log.splitlines() if SHARING_TEXT.search(line)]
        assert about_sharing == [  # the kit's one line; none of Gradio's own (see launch())
            "share link unavailable (no internet, or the share server refused us): "
            "serving on the local network instead (127.0.0.2)"
        ]
        assert "\n\n" not in log  # nor the blank lines Gradio prints around them
        lan_url = f"http://127.0.0.2:{port}/"
        assert http_get(lan_url + "config")[0] == 401  # credentials still required
        from gradio_client import Client

        client = Client(lan_url, auth=("tester", password), analytics_enabled=False, verbose=False)
        assert client.predict(**GENTOO, api_name="/predict")[2]["label"] == "Gentoo"
        assert password not in log
    finally:
        server.stop()


def test_streamlit_share_serves_on_the_lan(kit_home: Path, output_dir: Path) -> None:
    password = secrets.token_urlsafe(12)
    port = free_port()
    server = start_kit(
        "demo",
        "--ui",
        "streamlit",
        "--share",
        "--port",
        str(port),
        "--auth",
        f"tester:{password}",
        home=kit_home,
        log=output_dir / "demo.log",
        KIT_LAN_HOST="127.0.0.2",
    )
    try:
        server.wait_for(rf"On your network: http://127\.0\.0\.2:{port}/")
        assert http_get(f"http://127.0.0.2:{port}/_stcore/health") == (200, "ok")
        assert password not in server.output()
    finally:
        server.stop()


def test_deeply_nested_json_is_a_usage_error_not_a_traceback(kit_home: Path) -> None:
    deep = "[" * 30_000 + "]" * 30_000  # RecursionError inside json.loads
    result = run_kit("predict", "--json", deep, home=kit_home)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: --json is nested too deeply to be records"
