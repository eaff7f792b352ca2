"""A tampered model file is refused before it is unpickled, on every path that loads one.

The tampered file is a pickle that makes a marker folder when it is unpickled (the control test
shows that joblib.load runs it): a path that loaded it, in any of its processes, would leave the
marker behind. The manifest is left as saved, so only its sha256 tells the file changed.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from model.artifact import MODEL_FILE, ModelStore
from tests.helpers import (
    GENTOO,
    Promoted,
    ServerProcess,
    bentoml_serve,
    evil_model,
    free_port,
    promote,
    run_kit,
    service_leftovers,
    services_of_home,
    start_kit,
    stop_promoted,
    write_figures,
)

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these

TAMPERED = 3  # `kit --help`: model artifact missing or tampered
REFUSED_VERSION = 7  # `kit --help`: the service refused a published model version
STORE_COPY = "bentoml/models/penguins/{version}/" + MODEL_FILE  # what the service loads


@dataclass
class Answers:
    """What each load path answered, written to test-output/reliability/tampered.json."""

    codes: dict[str, int] = field(default_factory=dict)
    markers: dict[str, Path] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)

    def check(
        self, path: str, code: int, output: str, marker: Path, expected: int, *, kit: bool = True
    ) -> None:
        """Record, then assert: no marker, the documented exit code, sha256 named and, from a
        kit command, one error line (no traceback: BentoML's own log shows the worker's)."""
        self.codes[path], self.markers[path] = code, marker
        line = next((ln.strip() for ln in output.splitlines() if "error" in ln), "")
        print(f"{path}: exit {code}: {line}")  # shown with -s, or with a failure
        assert not marker.exists(), f"{path}: the tampered pickle was unpickled:\n{output}"
        assert code == expected, f"{path}: exit {code}, not {expected}:\n{output}"
        assert "sha256" in output, output
        assert not kit or "Traceback" not in output, output
        self.refused.add(path)

    def unpickled(self) -> list[str]:
        """The paths whose marker exists now (a late process would show here too)."""
        return sorted(path for path, marker in self.markers.items() if marker.exists())


@pytest.fixture(scope="module")
def answers() -> Iterator[Answers]:
    collected = Answers()
    yield collected
    unpickled = collected.unpickled()
    report: dict[str, object] = {
        "paths": len(collected.codes),
        "refused": len(collected.refused - set(unpickled)),
        "unpickled": len(unpickled),
        "exit_codes": collected.codes,
        "paths_checked": ", ".join(collected.codes),
    }
    write_figures("tampered", report)
    assert not unpickled, f"unpickled after the checks: {unpickled}"


def _tamper(model_file: Path, marker: Path) -> None:
    assert model_file.exists(), model_file
    model_file.write_bytes(evil_model(marker))


def _tamper_current(home: Path, marker: Path) -> None:
    _tamper(ModelStore(home).current() / MODEL_FILE, marker)


def _penguins_csv(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(GENTOO))
        writer.writeheader()
        writer.writerows([GENTOO] * 5)
    return path


def _answer(server: ServerProcess, timeout: float = 90) -> int:
    """The exit code of a command that should refuse at start; it is stopped in any case."""
    try:
        return server.wait_exit(timeout=timeout)
    finally:
        server.stop()


def test_control_the_tampered_file_runs_code_when_joblib_loads_it(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    model = tmp_path / MODEL_FILE
    model.write_bytes(evil_model(marker))
    load = "import joblib, sys; joblib.load(sys.argv[1])"
    subprocess.run([sys.executable, "-c", load, str(model)], check=True, timeout=60)
    assert marker.is_dir(), "the marker shows an unpickling: the tests below can fail"


def test_local_predict(kit_home: Path, tmp_path: Path, answers: Answers) -> None:
    marker = tmp_path / "unpickled"
    _tamper_current(kit_home, marker)
    result = run_kit("predict", "--backend", "local", "--json", json.dumps(GENTOO), home=kit_home)
    answers.check("local predict", result.returncode, result.stderr, marker, TAMPERED)


@pytest.mark.parametrize("ui", ["gradio", "streamlit"])
def test_demo_refuses_at_start(ui: str, kit_home: Path, tmp_path: Path, answers: Answers) -> None:
    marker = tmp_path / "unpickled"
    _tamper_current(kit_home, marker)
    port = free_port()
    demo = start_kit(
        "demo",
        "--ui",
        ui,
        "--backend",
        "local",
        "--port",
        str(port),
        home=kit_home,
        log=tmp_path / "demo.log",
    )
    code = _answer(demo)
    assert not service_leftovers(demo.proc.pid, ""), "no UI process is left"
    answers.check(f"demo ({ui})", code, demo.output(), marker, TAMPERED)


def test_promote(kit_home: Path, tmp_path: Path, answers: Answers) -> None:
    marker = tmp_path / "unpickled"
    _tamper_current(kit_home, marker)
    try:
        result = run_kit("promote", "--port", str(free_port()), home=kit_home, timeout=300)
        assert not services_of_home(kit_home), "no service is left running"
        assert not (kit_home / "state.json").exists()
    finally:
        run_kit("stop", home=kit_home)
    answers.check("promote", result.returncode, result.stderr, marker, TAMPERED)


@pytest.fixture(scope="module")
def store_copy(
    answers: Answers, trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A home promoted once and stopped: the model is in its BentoML store, which tests tamper.

    (After `answers`: its teardown checks the markers once every process here is stopped.)"""
    home = tmp_path_factory.mktemp("store-copy") / "kit"
    shutil.copytree(trained_home, home)
    stop_promoted(promote(home))
    return home


def test_promote_with_a_tampered_store_copy(
    store_copy: Path, tmp_path: Path, answers: Answers
) -> None:
    marker = tmp_path / "unpickled"
    _tamper(store_copy / STORE_COPY.format(version="v1"), marker)
    try:
        result = run_kit("promote", "--port", str(free_port()), home=store_copy, timeout=300)
        assert not services_of_home(store_copy), "no service is left running"
        assert not (store_copy / "state.json").exists()
    finally:
        run_kit("stop", home=store_copy)
    answers.check("promote (store copy)", result.returncode, result.stderr, marker, TAMPERED)


def test_serve_with_a_tampered_store_copy(
    store_copy: Path, tmp_path: Path, answers: Answers
) -> None:
    marker = tmp_path / "unpickled"
    _tamper(store_copy / STORE_COPY.format(version="v1"), marker)
    server = start_kit(
        "serve", "--port", str(free_port()), home=store_copy, log=tmp_path / "serve.log"
    )
    code = _answer(server)
    assert not service_leftovers(server.proc.pid, "")
    answers.check("serve", code, server.output(), marker, TAMPERED)


def test_the_service_itself_with_a_tampered_store_copy(
    store_copy: Path, tmp_path: Path, answers: Answers
) -> None:
    """`bentoml serve` as a container runs it, no kit in front: the worker loads the model."""
    marker = tmp_path / "unpickled"
    _tamper(store_copy / STORE_COPY.format(version="v1"), marker)
    service_id = "tampered-paths"
    server = bentoml_serve(store_copy, service_id, tmp_path / "b.log")
    code = _answer(server)
    assert not service_leftovers(server.proc.pid, service_id)
    answers.check(
        "service worker (bentoml serve)", code, server.output(), marker, TAMPERED, kit=False
    )


@pytest.fixture(scope="module")
def two_versions(
    answers: Answers, trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Promoted]:
    """v1 served, v2 trained; v2 published once and rolled back, so the BentoML store has it."""
    home = tmp_path_factory.mktemp("publish") / "kit"
    shutil.copytree(trained_home, home)
    run_kit("train", home=home, check=True)
    service = promote(home, "--version", "v1")
    try:
        run_kit("publish", "--version", "v2", home=home, check=True)
        run_kit("rollback", home=home, check=True)
        yield service
    finally:
        stop_promoted(service)


def _served_version(url: str) -> str:
    body = json.dumps({"records": [GENTOO]}).encode()
    request = urllib.request.Request(
        f"{url}/predict", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return str(json.loads(response.read())["predictions"][0]["model_version"])


@pytest.mark.parametrize(
    ("copy", "expected"),
    [
        ("models/penguins/v2/" + MODEL_FILE, TAMPERED),
        (STORE_COPY.format(version="v2"), REFUSED_VERSION),
    ],
    ids=["kit store", "store copy"],
)
def test_publish_refuses_and_v1_keeps_serving(
    copy: str, expected: int, two_versions: Promoted, tmp_path: Path, answers: Answers
) -> None:
    home, marker = two_versions.home, tmp_path / "unpickled"
    model_file = home / copy
    original = model_file.read_bytes()
    _tamper(model_file, marker)
    try:
        result = run_kit("publish", "--version", "v2", home=home, timeout=120)
        assert _served_version(two_versions.url) == "v1"
    finally:
        model_file.write_bytes(original)
    name = "publish" if expected == TAMPERED else "publish (store copy)"
    answers.check(name, result.returncode, result.stderr, marker, expected)


def test_batch(kit_home: Path, tmp_path: Path, answers: Answers) -> None:
    marker = tmp_path / "unpickled"
    _tamper_current(kit_home, marker)
    source = _penguins_csv(tmp_path / "penguins.csv")
    result = run_kit("batch", str(source), "--out", str(tmp_path / "out.db"), home=kit_home)
    answers.check("batch", result.returncode, result.stdout + result.stderr, marker, TAMPERED)


def test_spark_batch(kit_home: Path, tmp_path: Path, answers: Answers) -> None:
    marker = tmp_path / "unpickled"
    _tamper_current(kit_home, marker)
    source = _penguins_csv(tmp_path / "penguins.csv")
    out = tmp_path / "out.parquet"
    result = run_kit(
        "batch", str(source), "--engine", "spark", "--out", str(out), home=kit_home, timeout=300
    )
    answers.check("spark", result.returncode, result.stdout + result.stderr, marker, TAMPERED)
