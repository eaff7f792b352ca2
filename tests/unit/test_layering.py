"""The UIs only know the Predictor protocol: no module of app_prototype/ reaches into the
production side or its HTTP and serving stacks (the entry points in scripts/ compose them)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

FORBIDDEN = ("app_production", "bentoml", "requests", "joblib")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_module_of_app_prototype_imports_the_production_side() -> None:
    files = sorted((ROOT / "app_prototype").rglob("*.py"))
    assert len(files) >= 4, files
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module in imported_modules(path)
        if module.split(".")[0] in FORBIDDEN
    }
    assert not offending, sorted(offending)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "page.py"
    module.write_text("import os\n\ndef f():\n    from app_production.backends import x\n")
    assert imported_modules(module) == {"os", "app_production.backends"}
