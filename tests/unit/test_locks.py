"""`make demo` installs what the kit needs to run, `make test` adds the dev tools: two locks,
at the same versions (the demo's venv was 1.1 GB with Playwright, pytest, mypy in it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"pytest", "playwright", "ruff", "mypy", "hypothesis", "py-spy", "pytest-timeout"}


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def test_the_runtime_lock_has_no_dev_tools_and_the_dev_lock_has_them() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert not DEV_TOOLS & set(runtime), DEV_TOOLS & set(runtime)
    assert set(dev) >= DEV_TOOLS
    assert {"scikit-learn", "gradio", "streamlit", "bentoml", "joblib", "requests"} <= set(runtime)


def test_both_locks_pin_the_same_versions() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert set(runtime) <= set(dev), set(runtime) - set(dev)
    assert {name: runtime[name] for name in runtime} == {name: dev[name] for name in runtime}


def test_make_demo_installs_the_runtime_lock_and_make_test_the_dev_one() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): requirements.lock", 1)[1].split("\n\n", 1)[0]
    assert "-r requirements.lock" in recipe and "requirements-dev.lock" not in recipe
    assert re.search(r"^demo: \$\(STAMP\)", makefile, re.M)
    assert re.search(r"^test: \$\(DEV_STAMP\)", makefile, re.M)
    assert re.search(r"^lint: \$\(DEV_STAMP\)", makefile, re.M)
