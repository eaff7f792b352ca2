"""Model versions published as data: the running service follows them, with no failed request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app_production.client import RemotePredictor
from model.artifact import MODEL_FILE
from model.sampling import parity_records
from model.schema import ModelSchema
from tests.helpers import Promoted, promote, run_kit, stop_promoted, write_figures


@pytest.fixture
def two_versions(kit_home: Path) -> Iterator[Promoted]:
    """v1 and v2 of the example model in the store; the service promoted with v1."""
    run_kit("train", home=kit_home, check=True)
    service = promote(kit_home, "--version", "v1")
    try:
        yield service
    finally:
        stop_promoted(service)


def _record(home: Path) -> dict[str, object]:
    manifest = json.loads((home / "models/penguins/v1/manifest.json").read_text())
    return parity_records(ModelSchema.model_validate(manifest["schema"]))[0]


def _transitions(versions: list[str]) -> list[str]:
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


@pytest.mark.reliability
def test_publish_and_rollback_under_steady_load_fail_no_request(two_versions: Promoted) -> None:
    home, record = two_versions.home, _record(two_versions.home)
    answered: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def steady_stream() -> None:
        client = RemotePredictor(two_versions.url, retries=0)  # a failure must show, not retry
        try:
            while not stop.is_set():
                try:
                    answered.append(client.predict([record])[0].model_version)
                except Exception as exc:  # counted: the test wants none
                    failures.append(exc)
        finally:
            client.close()

    stream = threading.Thread(target=steady_stream)
    stream.start()
    try:
        published = run_kit("publish", "--version", "v2", home=home, check=True)
        assert "now answers with penguins:v2 (was penguins:v1" in published.stderr
        back = run_kit("rollback", home=home, check=True)
        assert "now answers with penguins:v1 (was penguins:v2" in back.stderr
        count = len(answered)
        while len(answered) < count + 20 and stream.is_alive():
            stop.wait(0.05)
    finally:
        stop.set()
        stream.join(30)
    write_figures(
        "publish_under_load",
        {
            "requests": len(answered) + len(failures),
            "failed": len(failures),
            "answering_versions": " → ".join(_transitions(answered)),
        },
    )
    assert failures == []
    assert _transitions(answered) == ["v1", "v2", "v1"], "each switch happens exactly once"
    assert len(answered) > 100
    models = [
        json.loads(line)
        for line in run_kit("models", "--json", home=home).stdout.split("\n")
        if line
    ]
    # The version the service answers with is the current one too: kit predict and kit demo
    # use the same model as the service, and no "another model" note is needed.
    assert [(m["version"], m["serving"], m["current"]) for m in models] == [
        ("v1", True, True),
        ("v2", False, False),
    ]
    status = json.loads(run_kit("status", "--json", home=home, check=True).stdout)
    assert status["version"] == "v1" and status["backend"] == "remote"


@pytest.mark.reliability
def test_a_tampered_version_is_refused_and_the_old_one_keeps_serving(
    two_versions: Promoted,
) -> None:
    home, record = two_versions.home, _record(two_versions.home)
    run_kit("publish", "--version", "v2", home=home, check=True)  # v2 is in the BentoML store
    run_kit("rollback", home=home, check=True)
    stored = home / "bentoml/models/penguins/v2" / MODEL_FILE
    stored.write_bytes(stored.read_bytes() + b"tampered")  # the serving side's copy

    refused = run_kit("publish", "--version", "v2", home=home)
    assert refused.returncode == 7, refused.stderr
    assert "refused penguins:v2 and keeps serving penguins:v1" in refused.stderr
    assert "sha256" in refused.stderr
    client = RemotePredictor(two_versions.url)
    try:
        assert client.predict([record])[0].model_version == "v1"
    finally:
        client.close()

    # In the kit's own store, a tampered version never leaves: exit 3, nothing published.
    (home / "models/penguins/v2" / MODEL_FILE).write_bytes(b"not a model")
    local = run_kit("publish", "--version", "v2", home=home)
    assert local.returncode == 3 and "sha256" in local.stderr
    unknown = run_kit("publish", "--version", "v9", home=home)
    assert unknown.returncode == 2 and "no version 'v9' of penguins; versions: v1, v2" in (
        unknown.stderr
    )


def test_publish_without_a_service_says_what_to_do(kit_home: Path) -> None:
    result = run_kit("publish", home=kit_home)
    assert result.returncode == 2 and "run `kit promote` first" in result.stderr
    assert run_kit("rollback", home=kit_home).returncode == 2
