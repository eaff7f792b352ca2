"""The Bento's requirements cover what the service imports.

The service image installs only `RUNTIME_PACKAGES` (app_production/promote.py), not the kit's
whole lock: a module the service reaches but no listed package brings (orjson, once, through
the prediction log) fails only inside the container. Here the service's import closure is
read from the sources (every `import`, also inside functions), and each third-party module
must come from a listed package or from one of their own requirements.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from app_production.promote import RUNTIME_PACKAGES
from tests.helpers import ROOT

OURS = ("app_production", "model")
# Not reached by the service: app_production.promote is imported by FileChannel.publish,
# which only `kit publish` calls (the service fetches and reports); the others are commands'.
NOT_IN_THE_SERVICE = {
    "app_production.promote",
    "app_production.monitor_report",
    "model.drift",
    "model.train",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _closure(start: str) -> tuple[set[str], set[str]]:
    """(our modules reached from `start`, the top-level third-party modules they import)."""
    seen, third, todo = set(), set(), [start]
    while todo:
        module = todo.pop()
        if module in seen or module in NOT_IN_THE_SERVICE:
            continue
        seen.add(module)
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists():
            continue
        for name in _imports(path):
            root = name.split(".")[0]
            if root in OURS:
                todo.append(name)
                parts = name.split(".")  # `from model import artifact` reaches model.artifact
                todo.extend(".".join(parts[: i + 1]) for i in range(1, len(parts)))
            elif root not in sys.stdlib_module_names and root != "__future__":
                third.add(root)
    return seen, third


def _distribution_closure(names: tuple[str, ...]) -> set[str]:
    """The listed distributions and everything they require (extras not counted)."""
    found: set[str] = set()
    todo = [n.lower() for n in names]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop().lower())
        if name in found:
            continue
        found.add(name)
        try:
            needed = requires(name) or []
        except PackageNotFoundError:
            continue  # an optional requirement that is not installed provides nothing
        for requirement in needed:
            if "extra ==" in requirement:
                continue
            todo.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
    return found


def test_every_module_the_service_imports_is_installed_by_the_bento() -> None:
    reached, third = _closure("app_production.service")
    assert "app_production.prediction_log" in reached and "app_production.follower" in reached
    providers = packages_distributions()
    installed = _distribution_closure(RUNTIME_PACKAGES)
    missing = {
        module: providers.get(module, ["?"])
        for module in sorted(third)
        if not any(
            re.sub(r"[-_.]+", "-", d.lower()) in installed for d in providers.get(module, [])
        )
    }
    assert missing == {}, (
        f"the service imports {sorted(missing)} but RUNTIME_PACKAGES installs none of "
        f"{missing}: add the package to app_production/promote.py"
    )
