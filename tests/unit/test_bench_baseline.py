"""The FastAPI baseline of `kit bench` is fair: the same artifact, answers and field errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model.artifact import ModelStore
from model.errors import InvalidInput
from model.predictor import LocalPredictor
from model.sampling import parity_records
from scripts.bench.fastapi_baseline import create_app


@pytest.fixture(scope="module")
def baseline(trained_home: Path) -> tuple[TestClient, LocalPredictor]:
    folder = ModelStore(trained_home).current()
    return TestClient(create_app(folder)), LocalPredictor(folder)


def test_same_predictions_as_in_process(baseline: tuple[TestClient, LocalPredictor]) -> None:
    client, local = baseline
    records = parity_records(local.schema)
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200
    assert response.json()["predictions"] == [p.to_json() for p in local.predict(records)]
    assert client.get("/readyz").json() == {"ready": True}


def test_same_field_errors_as_the_schema(baseline: tuple[TestClient, LocalPredictor]) -> None:
    client, local = baseline
    bad = [{**parity_records(local.schema)[0], "bill_length_mm": 612.0}, "not a record"]
    with pytest.raises(InvalidInput) as expected:
        local.schema.validate_records(bad)
    response = client.post("/predict", json={"records": bad})
    assert response.status_code == 422
    assert response.json()["errors"] == [e.to_json() for e in expected.value.errors]


def test_too_many_records_are_refused(
    baseline: tuple[TestClient, LocalPredictor],
) -> None:
    client, local = baseline
    record = parity_records(local.schema)[0]
    assert client.post("/predict", json={"records": [record] * 1001}).status_code == 422
