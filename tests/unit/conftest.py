"""Fixtures of the unit tests: the example model is trained once per session, into a tmp folder.

Tests that change an artifact (tampering, new versions, edited manifests) work on a copy
(`example_store_copy`) so that the shared, session-wide artifact stays pristine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model.artifact import Manifest, ModelStore
from model.predictor import LocalPredictor
from model.train import train_example


@pytest.fixture(scope="session")
def example_trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """A kit home holding the trained example (penguins:v1), and its manifest. Do not modify."""
    home = tmp_path_factory.mktemp("kit-home")
    manifest = train_example(ModelStore(home))
    return home, manifest


@pytest.fixture(scope="session")
def example_home(example_trained: tuple[Path, Manifest]) -> Path:
    return example_trained[0]


@pytest.fixture(scope="session")
def example_manifest(example_trained: tuple[Path, Manifest]) -> Manifest:
    return example_trained[1]


@pytest.fixture(scope="session")
def example_predictor(example_home: Path) -> LocalPredictor:
    """The trained example loaded in-process (shared: monkeypatch its attributes, never assign)."""
    return LocalPredictor.from_home(example_home)


@pytest.fixture
def example_store_copy(example_home: Path, tmp_path: Path) -> ModelStore:
    """A private copy of the trained home, free to tamper with."""
    home = tmp_path / "home"
    shutil.copytree(example_home, home)
    return ModelStore(home)
