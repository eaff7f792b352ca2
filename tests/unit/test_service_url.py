"""KIT_SERVICE_URL: the remote backend calls that URL, never the state file (the UI image has
none). The URL answering for real is tested with the images (tests/integration/test_images.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app_production.backends import open_predictor
from app_production.state import ServiceState
from model.errors import ServiceUnavailable
from model.predictor import LocalPredictor
from model.settings import KitSettings
from tests.helpers import closed_port


def test_the_setting_reads_kit_service_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_SERVICE_URL", "http://penguins-service:3000/")
    assert KitSettings().service_url == "http://penguins-service:3000"  # no trailing slash


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_url_is_no_url(blank: str) -> None:
    assert KitSettings(service_url=blank).service_url is None


def test_a_url_without_http_is_refused_with_the_fix() -> None:
    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        KitSettings(service_url="penguins-service:3000")


@pytest.mark.parametrize("backend", ["remote", "auto"])
def test_remote_and_auto_call_the_url_not_the_state_file(
    backend: str, example_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "kit"
    home.mkdir()
    (home / "current.json").write_text((example_home / "current.json").read_text())
    (home / "models").symlink_to(example_home / "models")
    elsewhere = f"http://127.0.0.1:{closed_port()}"
    ServiceState(
        url=elsewhere,
        host="127.0.0.1",
        port=1,
        pid=1,
        model="penguins:v1",
        bento="b",
        log="",
        started_at="",
    ).save(home / "state.json")  # a promoted service elsewhere: must not be the one called
    url = f"http://127.0.0.1:{closed_port()}"
    settings = KitSettings(home=home, service_url=url)
    with pytest.raises(ServiceUnavailable) as refused:
        open_predictor(backend, settings)  # type: ignore[arg-type]
    assert str(refused.value).startswith(f"the model service at {url} (KIT_SERVICE_URL)")
    assert elsewhere not in str(refused.value)


def test_local_ignores_the_url(example_home: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    predictor = open_predictor("local", KitSettings(home=example_home, service_url=url))
    assert isinstance(predictor, LocalPredictor)
