"""The README's commands, run as written (with a private KIT_HOME and loopback-only sharing)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, ServerProcess, closed_port, fake_frpc_home, http_get, kit_env

README = (ROOT / "README.md").read_text()
VENV_BIN = ROOT / ".venv" / "bin"


def readme_block() -> list[str]:
    """Commands of the block marked `readme-test`, comments stripped."""
    marker = README.index("<!-- readme-test")
    block = README[marker:].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def _shell_env(home: Path, tmp_path: Path) -> dict[str, str]:
    # Sharing without the internet: the tunnel server is a closed loopback port, and 127.0.0.2
    # stands in for "all interfaces" so that nothing listens beyond loopback during tests.
    return kit_env(
        home,
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        HF_HOME=str(fake_frpc_home(tmp_path)),
        GRADIO_SHARE_SERVER_ADDRESS=f"127.0.0.1:{closed_port()}",
        KIT_LAN_HOST="127.0.0.2",
    )


def _serve_and_check(command: str, env: dict[str, str], log: Path) -> str:
    server = ServerProcess(["bash", "-c", f"exec {command}"], log, env)
    try:
        url = server.wait_for(r"Demo running at (http://\S+)", timeout=120).group(1)
        if "--share" in command:
            server.wait_for(r"On your network: http://127\.0\.0\.2:\d+/")
            assert "share link unavailable" in server.output()
        status, _ = http_get(url)
        assert status == 200
        return server.output()
    finally:
        server.stop()


def test_readme_shows_the_two_commands_first() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "make demo",
        "make test",
    ]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.timeout(900)
def test_every_command_of_the_usage_block(tmp_path: Path, output_dir: Path) -> None:
    home = tmp_path / "kit"
    env = _shell_env(home, tmp_path)
    commands = readme_block()
    assert commands[0] == "source .venv/bin/activate" and (VENV_BIN / "activate").exists()
    ran: list[str] = []
    try:
        for i, command in enumerate(commands[1:]):
            command = command.replace("/tmp/body-mass", str(tmp_path / "body-mass"))
            remote = "kit promote" in ran and "kit stop" not in ran
            if re.match(r"kit demo\b", command):
                output = _serve_and_check(command, env, output_dir / f"{i}-demo.log")
                assert ("backend remote: http://127.0.0.1:" in output) == remote, output
            else:
                result = subprocess.run(
                    ["bash", "-c", command],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
                if command.startswith("kit predict"):
                    _check_prediction(json.loads(result.stdout))
            ran.append(" ".join(command.split()[:2]))
    finally:
        if "kit promote" in ran and "kit stop" not in ran:
            subprocess.run(["bash", "-c", "kit stop"], cwd=ROOT, env=env, check=False, timeout=60)
    assert {"kit import", "kit demo", "kit promote", "kit stop"} <= set(ran)


def _check_prediction(prediction: dict[str, object]) -> None:
    assert prediction["model_version"] == "v1"
    if "label" in prediction:
        assert prediction["label"] == "Gentoo"
    else:  # the body-mass regressor: grams of a penguin
        assert 2000 < float(prediction["value"]) < 7000  # type: ignore[arg-type]


@pytest.mark.timeout(600)
def test_make_demo_trains_then_serves(tmp_path: Path, output_dir: Path) -> None:
    env = _shell_env(tmp_path / "fresh", tmp_path)
    output = _serve_and_check("make demo", env, output_dir / "make-demo.log")
    assert "trained penguins:v1" in output


def test_readme_shows_the_committed_bench_run() -> None:
    """The README's table and targets are rendered from scripts/bench/results/bench.json."""
    from scripts.bench.readme import RESULTS, update

    report = json.loads((RESULTS / "bench.json").read_text())
    assert report["mode"] == "full"
    assert update(README, report) == README, "run `python -m scripts.bench.readme`"
    assert (RESULTS / "bench.png").exists() and "scripts/bench/results/bench.png" in README
    assert "kit bench --quick" in README


def test_the_readme_links_nothing_outside_the_repository() -> None:
    # A user has only the repository: a link to ../shared/ (the team's notes) is a dead end.
    assert "../" not in README
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_the_readme_says_what_the_commands_really_do() -> None:
    from scripts.bench.command import bench

    stop_line = next(line for line in readme_block() if line.startswith("kit stop"))
    stop_comment = next(line for line in README.splitlines() if line.startswith("kit stop "))
    assert stop_line == "kit stop"
    assert "falls back to the local model" not in stop_comment  # a running UI says unavailable
    assert "unavailable" in stop_comment
    assert "`kit status` shows the\nservice's pid" not in README  # the table has no pid
    assert "five ways" in (bench.__doc__ or "") and "Five ways to serve" in README
    assert "serves until you press Ctrl-C" in README
    assert "kit demo --port" in README and 'make demo DEMO_ARGS="' in README
