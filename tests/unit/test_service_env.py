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


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_an_empty_key_is_no_key_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    # KIT_API_KEY= used to count as "a key": the exposure check passed, the service installed
    # no guard (it checks a non-empty key), and `kit status` said "API key: required".
    monkeypatch.setenv("KIT_API_KEY", blank)
    settings = KitSettings(home=tmp_path)
    assert settings.api_key is None
    assert "KIT_API_KEY" not in service_env(settings, "penguins:v1")
    assert KitSettings(home=tmp_path, api_key=SecretStr(blank)).api_key is None
