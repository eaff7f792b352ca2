"""The `kit` command's rough edges: one line and the documented exit code instead of a
traceback, loopback calls that a proxy cannot break, no child left serving after a signal,
help that reads at 80 columns. Real `kit` subprocesses, loopback only."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
from pathlib import Path

import psutil
import pytest

from tests.helpers import (
    GENTOO,
    Promoted,
    closed_port,
    declare_limits,
    free_port,
    http_get,
    promote,
    run_kit,
    start_kit,
    stop_promoted,
)
from tests.unit.test_imports import FRAMEWORKS, imported_by

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    """HTTP_PROXY pointing at a closed loopback port, and no NO_PROXY: `kit` subprocesses
    inherit it (helpers.kit_env copies the environment)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    proxy = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    return proxy


# --- a busy port: one line, exit 2 -------------------------------------------------------


@pytest.mark.parametrize("ui", ["gradio", "streamlit"])
def test_demo_on_a_busy_port_says_so_in_one_line(trained_home: Path, ui: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_kit("demo", "--ui", ui, "--port", str(port), home=trained_home)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} is in use: choose another, or omit --port to take a free one"
    ]


# --- loopback never goes through a proxy ---------------------------------------------------


def test_predict_and_status_reach_the_service_despite_a_proxy(
    promoted: Promoted, dead_proxy: str, tmp_path: Path
) -> None:
    predicted = run_kit(
        "predict", "--backend", "remote", "--json", json.dumps(GENTOO), home=promoted.home
    )
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["label"] == "Gentoo"
    status = run_kit("status", "--json", home=promoted.home, check=True)
    service = json.loads(status.stdout)["service"]
    assert (service["ready"], service["model_in_service"]) == (True, "penguins:v1")
    # and `kit status` with a service still loads no framework (one request for /metadata)
    code, packages = imported_by(["status"], promoted.home, tmp_path / "modules.json")
    assert code == 0 and not packages & set(FRAMEWORKS)


def test_promote_waits_for_its_service_despite_a_proxy(kit_home: Path, dead_proxy: str) -> None:
    service = promote(kit_home)  # readiness waits and the parity check are loopback calls
    try:
        assert "✓ wait for /readyz: ready" in service.output
        assert "✓ parity check" in service.output
    finally:
        stop_promoted(service)


@pytest.mark.parametrize("ui", ["gradio", "streamlit"])
def test_the_demo_starts_despite_a_proxy(
    trained_home: Path, dead_proxy: str, output_dir: Path, ui: str
) -> None:
    """Streamlit's start is awaited over HTTP by the kit, Gradio's by Gradio itself."""
    server = start_kit(
        "demo",
        "--ui",
        ui,
        "--port",
        str(free_port()),
        home=trained_home,
        log=output_dir / "demo.log",
    )
    try:
        server.wait_for(r"Demo running at http://127\.0\.0\.1:\d+/", timeout=50)
    finally:
        server.stop()


# --- a signal to `kit demo --ui streamlit` ends its child ----------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_the_kit_ends_its_streamlit_child(
    trained_home: Path, output_dir: Path, signum: signal.Signals
) -> None:
    port = free_port()
    server = start_kit(
        "demo",
        "--ui",
        "streamlit",
        "--port",
        str(port),
        home=trained_home,
        log=output_dir / "demo.log",
    )
    children: list[psutil.Process] = []
    try:
        server.wait_for(rf"Demo running at http://127\.0\.0\.1:{port}/")
        assert http_get(f"http://127.0.0.1:{port}/_stcore/health") == (200, "ok")
        children = [
            p
            for p in psutil.Process(server.proc.pid).children()
            if "streamlit" in " ".join(p.cmdline())
        ]
        assert len(children) == 1, children
        os.kill(server.proc.pid, signum)  # the kit only, as `kill` or a closed terminal does
        _, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, f"Streamlit (pid {children[0].pid}) still runs after {signum.name}"
        assert server.wait_exit(timeout=20) == 128 + signum
    finally:
        server.stop()
        for child in children:  # an orphan, if the kit failed: by its pid, never by name
            with contextlib.suppress(psutil.Error):
                child.kill()


# --- kit promote on the port of its own service --------------------------------------------


def test_promote_on_the_port_its_service_holds_says_it_already_serves(promoted: Promoted) -> None:
    before = (promoted.home / "state.json").read_bytes()
    port = json.loads(before)["port"]
    result = run_kit("promote", "--port", str(port), home=promoted.home)
    assert result.returncode == 0, result.stderr
    assert f"penguins:v1 is already served at {promoted.url}" in result.stderr
    assert "in use" not in result.stderr and "✓ build" not in result.stderr
    assert (promoted.home / "state.json").read_bytes() == before  # nothing replaced
    assert http_get(f"{promoted.url}/readyz")[0] == 200


def test_a_regression_promote_compares_values_and_names_the_service_on_its_port(
    regression_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "kit"
    shutil.copytree(regression_home, home)
    service = promote(home)
    try:
        [parity] = [line for line in service.output.splitlines() if "parity check" in line]
        assert re.search(r"records \(\d+ with warnings, identical\): values within 1e-09", parity)
        assert "labels" not in parity and "probabilities" not in parity
        state = (home / "state.json").read_bytes()
        port = json.loads(state)["port"]
        held = f"port {port} is held by the promoted service, which answers with body-mass:v1"
        declare_limits(home, {})  # v2, current: the same inputs, so `kit publish` can swap it
        same_inputs = run_kit("promote", "--port", str(port), home=home)
        assert same_inputs.returncode == 2, same_inputs.stderr
        assert f"{held}: `kit publish` makes it answer with body-mass:v2" in same_inputs.stderr
        assert "omit --port" in same_inputs.stderr
        declare_limits(home, {"bill_length_mm": (10.0, 100.0)})  # v3: other inputs (a limit)
        other_inputs = run_kit("promote", "--port", str(port), home=home)
        assert other_inputs.returncode == 2, other_inputs.stderr
        assert f"{held}: omit --port" in other_inputs.stderr
        assert "`kit stop`" in other_inputs.stderr and "publish" not in other_inputs.stderr
        assert (home / "state.json").read_bytes() == state  # it kept serving, untouched
    finally:
        stop_promoted(service)


# --- kit batch: a wrong --key or a missing feature names what exists ----------------------

FEATURES = "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex"


def test_batch_with_a_wrong_key_names_key_and_lists_the_columns(
    trained_home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "penguins.csv"
    source.write_text(f"id,{FEATURES}\n1,Biscoe,47.5,15.0,217,5400,male\n")
    result = run_kit(
        "batch", str(source), "--out", str(tmp_path / "out.db"), "--key", "ID", home=trained_home
    )
    assert result.returncode == 2, result.stderr
    assert f"--key 'ID' is not a column of {source}" in result.stderr
    assert "its columns: id, island, bill_length_mm" in result.stderr
    assert "feature" not in result.stderr and "kit status" not in result.stderr


def test_batch_with_a_missing_feature_lists_the_models_features(
    trained_home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "penguins.csv"
    source.write_text("id,Island,bill_length_mm\n1,Biscoe,47.5\n")
    result = run_kit("batch", str(source), "--out", str(tmp_path / "out.db"), home=trained_home)
    assert result.returncode == 2, result.stderr
    assert f"{source} has no column 'island'" in result.stderr
    assert f"the model's features: {FEATURES.replace(',', ', ')}" in result.stderr
    assert "its columns: id, Island, bill_length_mm" in result.stderr
    assert "kit status" not in result.stderr


# --- --help at 80 columns -------------------------------------------------------------------


def _lone_words(text: str) -> list[str]:
    """Lines of a help text holding a single word. Not counted: box borders and titles,
    Typer's own "[required]" marker (a line of its own by design) and the help of Typer's own
    --install-completion and --show-completion options."""
    lone, typers_option = [], False
    for line in text.splitlines():
        cells = line.strip(" │")
        if line.lstrip().startswith(("╭", "╰")):
            typers_option = False
            continue
        if cells.lstrip("* ").startswith("--"):
            typers_option = cells.startswith(("--install-completion", "--show-completion"))
        if typers_option or cells == "[required]":
            continue
        if len(cells.split()) == 1:
            lone.append(line)
    return lone


COMMANDS = [
    "train",
    "import",
    "predict",
    "status",
    "demo",
    "promote",
    "serve",
    "stop",
    "models",
    "use",
    "publish",
    "rollback",
    "batch",
    "annotate",
    "bench",
]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_no_lone_word_lines_at_80_columns(command: str | None, tmp_path: Path) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    result = run_kit(*args, home=tmp_path / "kit", COLUMNS="80")
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert not _lone_words(result.stdout), result.stdout


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("promote", "[default: (current)]"),
        ("publish", "[default: (current)]"),
        ("batch", "[default: (predictions.db)]"),
        ("bench", "[default: (<home>/bench)]"),
    ],
)
def test_help_shows_the_defaults_that_are_not_values(
    command: str, shown: str, tmp_path: Path
) -> None:
    """Defaults that are words, not values: once swallowed as rich markup ("[default: x]")."""
    result = run_kit(command, "--help", home=tmp_path / "kit", COLUMNS="200")
    assert shown in result.stdout
