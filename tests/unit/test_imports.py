"""The CLI's fast paths import only what they use: `kit --help` and `kit status` must not load
the frameworks (seconds of imports on these machines). Checked by the modules a real `kit`
run leaves in `sys.modules`, not by timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, kit_env

FRAMEWORKS = ("sklearn", "pandas", "gradio", "bentoml", "streamlit", "scipy")
# `kit --help` parses no settings and reads no model: 0.5 s is the goal, pydantic-settings
# alone costs a quarter of it here.
HELP_ALSO = ("pydantic_settings", "numpy", "joblib", "requests", "psutil")

PROBE = """
import json, sys
sys.argv = ["kit", *json.loads(sys.argv[1])]
from scripts.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open({out!r}, "w") as handle:
    json.dump({{"code": code, "modules": sorted(sys.modules)}}, handle)
"""


def imported_by(args: list[str], home: Path, out: Path) -> tuple[object, set[str]]:
    """(exit code, top-level packages imported) of `kit ARGS` run in a fresh interpreter."""
    subprocess.run(
        [sys.executable, "-c", PROBE.format(out=str(out)), json.dumps(args)],
        cwd=ROOT,
        env=kit_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(out.read_text())
    return result["code"], {name.split(".")[0] for name in result["modules"]}


@pytest.mark.parametrize("args", [["--help"], []], ids=["--help", "no-args"])
def test_help_imports_no_framework_nor_settings(args: list[str], tmp_path: Path) -> None:
    code, packages = imported_by(args, tmp_path / "kit", tmp_path / "modules.json")
    assert code in (0, 2)  # no arguments: the help, with click's usage exit code
    assert not packages & {*FRAMEWORKS, *HELP_ALSO}


def test_status_without_a_service_imports_no_framework(trained_home: Path, tmp_path: Path) -> None:
    code, packages = imported_by(["status"], trained_home, tmp_path / "modules.json")
    assert code == 0
    assert not packages & set(FRAMEWORKS)


def test_the_cli_spells_the_backends_as_the_settings_do() -> None:
    """scripts.common repeats model.settings.Backend so that `kit --help` needs no settings."""
    from typing import get_args

    from model.settings import Backend
    from scripts.common import Backend as CliBackend

    assert get_args(CliBackend) == get_args(Backend)
