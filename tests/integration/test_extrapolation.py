"""Values beyond the sample, local and served: predicted with the same warnings, and refused
with the same field errors only where the model itself cannot answer (infinity or NaN).

A Ridge regressor on scikit-learn's diabetes data (shipped with scikit-learn), imported with a
quarter of the rows as the sample, promoted for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import joblib
import pytest
import requests
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from app_production.client import RemotePredictor
from model.errors import InvalidInput
from model.predictor import LocalPredictor, same_predictions
from tests.helpers import Promoted, promote, run_kit, stop_promoted


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Promoted]:
    folder = tmp_path_factory.mktemp("diabetes")
    data = load_diabetes(as_frame=True).frame
    joblib.dump(Ridge().fit(data.drop(columns="target"), data["target"]), folder / "ridge.joblib")
    data.sample(frac=0.25, random_state=0).to_csv(folder / "sample.csv", index=False)
    home = folder / "kit"
    run_kit(
        "import", str(folder / "ridge.joblib"), "--sample", str(folder / "sample.csv"),
        "--target", "target", "--name", "diabetes", home=home, check=True,
    )  # fmt: skip
    service = promote(home)
    try:
        yield service
    finally:
        stop_promoted(service)


@pytest.fixture(scope="module")
def both(served: Promoted) -> Iterator[tuple[LocalPredictor, RemotePredictor]]:
    remote = RemotePredictor(served.url)
    try:
        yield LocalPredictor.from_home(served.home), remote
    finally:
        remote.close()


def _record(local: LocalPredictor, **changes: Any) -> dict[str, Any]:
    return {**local.schema.examples[0], **changes}


def test_every_row_of_the_dataset_is_predicted_locally_and_remotely_alike(
    both: tuple[LocalPredictor, RemotePredictor],
) -> None:
    local, remote = both
    rows = load_diabetes(as_frame=True).data.to_dict(orient="records")
    expected, answered = local.predict(rows), remote.predict(rows)
    assert len(answered) == len(rows) == 442, "no row of the model's own data is refused"
    assert all(same_predictions(a, b, 1e-9) for a, b in zip(expected, answered, strict=True))
    assert any(p.warnings for p in expected), "a 25% sample does not span the dataset"


def test_far_beyond_the_sample_is_still_a_prediction_with_a_warning(
    both: tuple[LocalPredictor, RemotePredictor],
) -> None:
    local, remote = both
    feature = local.schema.feature("bmi")
    assert feature.minimum is None and feature.expected_max is not None
    record = _record(local, bmi=feature.expected_max * 5)
    [a], [b] = local.predict([record]), remote.predict([record])
    assert a.value is not None and same_predictions(a, b, 1e-9)
    assert a.warnings == b.warnings and a.warnings is not None
    assert a.warnings[0].startswith(f"bmi {feature.expected_max * 5:g} is outside the range")


def test_an_input_the_model_cannot_compute_with_is_refused_alike(
    both: tuple[LocalPredictor, RemotePredictor], served: Promoted
) -> None:
    local, remote = both
    record = _record(local, bmi=1e308, s5=-1e308)  # Ridge answers infinity or NaN
    fine = _record(local)
    errors = []
    for predictor in (local, remote):
        with pytest.raises(InvalidInput) as caught:
            predictor.predict([fine, record])
        errors.append([(e.record, e.field, e.message) for e in caught.value.errors])
    assert errors[0] == errors[1]
    assert [(r, f) for r, f, _ in errors[0]] == [(1, "bmi"), (1, "s5")]
    assert "a value the model can compute with (it returned infinity or NaN" in errors[0][0][2]
    response = requests.post(f"{served.url}/predict", json={"records": [fine, record]}, timeout=60)
    assert response.status_code == 422, "never a 500, never a non-JSON body"
    assert [e["field"] for e in response.json()["errors"]] == ["bmi", "s5"]
    # A batch of other callers is not affected: the usual record alone still predicts.
    assert remote.predict([fine])[0].value is not None
