"""The service's environment: its API key comes from the kit's settings, nowhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from app_production.promote import service_env
from model.settings import KitSettings


def test_the_key_comes_from_settings_not_from_the_calling_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIT_API_KEY", "from-the-shell")
    without = service_env(KitSettings(home=tmp_path, api_key=None), "penguins:v1")
    assert "KIT_API_KEY" not in without  # e.g. `kit bench` serves its private copy keyless
    assert without["KIT_MODEL_TAG"] == "penguins:v1"
    assert without["BENTOML_HOME"] == str(tmp_path / "bentoml")
    with_key = service_env(KitSettings(home=tmp_path, api_key=SecretStr("s3cret")), "p:v1")
    assert with_key["KIT_API_KEY"] == "s3cret"
