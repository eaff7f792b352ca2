"""Shared fixtures. Tests are marked by folder: unit/, integration/, e2e/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.artifact import ModelStore
from model.settings import TELEMETRY_OFF
from tests.helpers import OUTPUT_ROOT, Promoted, promote, stop_promoted

for _name, _value in {**TELEMETRY_OFF, "HF_HUB_OFFLINE": "1"}.items():
    os.environ[_name] = _value  # before any test imports gradio, streamlit or bentoml
for _name in [n for n in os.environ if n.startswith("KIT_")]:
    del os.environ[_name]  # the developer's own settings must not leak into tests


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kit home with the example model trained once per session. Treat it as read-only."""
    from model.train import train_example

    home = tmp_path_factory.mktemp("kit-home")
    train_example(ModelStore(home))
    return home


@pytest.fixture
def kit_home(trained_home: Path, tmp_path: Path) -> Path:
    """A private copy of the trained home, for tests that change it."""
    home = tmp_path / "kit"
    shutil.copytree(trained_home, home)
    return home


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """test-output/<test name>/: screenshots and logs a person may want to look at."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    folder = OUTPUT_ROOT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder


@pytest.fixture(scope="session")
def regression_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kit home whose current model is a user's regressor, brought in with `kit import`."""
    import joblib

    from model.importer import import_model
    from scripts.example_regressor import TARGET, build, training_data

    folder = tmp_path_factory.mktemp("regressor")
    data = training_data()
    joblib.dump(build().fit(data.drop(columns=[TARGET]), data[TARGET]), folder / "model.joblib")
    data.sample(n=80, random_state=1).to_csv(folder / "sample.csv", index=False)
    home = folder / "kit"
    import_model(
        ModelStore(home),
        folder / "model.joblib",
        folder / "sample.csv",
        target=TARGET,
        name="body-mass",
    )
    return home


@pytest.fixture(scope="session")
def promoted(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Promoted]:
    """The example model promoted once per session (no API key); stopped and checked at the end.

    Read-only: tests that stop, replace or reconfigure a service promote their own.
    """
    home = tmp_path_factory.mktemp("promoted") / "kit"
    shutil.copytree(trained_home, home)
    service = promote(home)
    try:
        yield service
    finally:
        stop_promoted(service)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB filesystem (tmpfs) mounted for this test: a disk that fills up."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:  # a failure, not a skip: the full-disk promise needs it
        pytest.fail(
            f"cannot mount a tmpfs to test a full disk ({mounted.stderr.strip()}): run the "
            "tests as root in a container that allows `mount` (CAP_SYS_ADMIN)"
        )
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
