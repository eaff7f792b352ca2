"""`make reliability`'s report: every figure the tests wrote, one table per part, the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scripts.reliability.report import render

ROOT = Path(__file__).resolve().parents[2]


def test_the_report_shows_every_scalar_figure_with_the_machine() -> None:
    text = render({"worker_killed": {"back_after_s": 0.29, "nested": {"failed": 8}, "pids": [1]}})
    assert "Machine: " in text and "cores" in text
    assert "## Worker killed (kill -9) while 8 callers run" in text
    assert "| back_after_s | 0.29 |" in text and "| nested.failed | 8 |" in text
    assert "pids" not in text  # lists are not figures


def test_the_command_writes_both_files_and_refuses_an_empty_run(tmp_path: Path) -> None:
    figures, out = tmp_path / "figures", tmp_path / "out"
    figures.mkdir()
    command = [sys.executable, "-m", "scripts.reliability.report", "--figures", str(figures)]
    empty = subprocess.run([*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert empty.returncode != 0 and "run `pytest -m reliability` first" in empty.stderr
    (figures / "fuzz.json").write_text(json.dumps({"cases": 1204, "5xx": 0}))
    subprocess.run([*command, "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    assert json.loads((out / "reliability.json").read_text())["fuzz"]["cases"] == 1204
    assert "| 5xx | 0 |" in (out / "reliability.md").read_text()
