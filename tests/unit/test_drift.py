"""model/drift.py on DataFrames: a shift is flagged and named first, a resample is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.drift import (
    Thresholds,
    compare,
    latency,
    psi,
    summarize_predictions,
)
from model.schema import Feature, ModelSchema

SCHEMA = ModelSchema(
    task="regression",
    features=[
        Feature(name="size", kind="number", expected_min=0.0, expected_max=20.0),
        Feature(name="count", kind="integer", expected_min=0, expected_max=10),
        Feature(name="colour", kind="category", choices=["red", "green", "blue"]),
        Feature(name="flag", kind="boolean"),
        Feature(name="note", kind="text"),
    ],
)


def frame(n: int, seed: int, colours: tuple[float, float, float] = (0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "size": rng.normal(10.0, 2.0, n),
            "count": rng.integers(0, 8, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=list(colours)),
            "flag": rng.random(n) < 0.3,
            "note": ["free text"] * n,
        }
    )


REFERENCE = frame(2000, seed=1)


def by_name(report: object, name: str) -> object:
    return next(f for f in report.features if f.name == name)  # type: ignore[attr-defined]


def test_psi_of_identical_data_is_about_zero() -> None:
    report = compare(SCHEMA, REFERENCE, REFERENCE.copy())
    assert report.drifted == []
    assert all(f.score < 1e-9 for f in report.features)
    assert all(f.verdict == "ok" for f in report.features)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert np.isfinite(psi([1.0, 0.0], [0.0, 1.0]))  # empty buckets: epsilon, no infinity


def test_a_resample_with_another_seed_is_not_flagged() -> None:
    report = compare(SCHEMA, REFERENCE, frame(500, seed=2))
    assert report.drifted == [], [(f.name, f.score, f.reasons) for f in report.features]
    assert all(f.score < 0.1 for f in report.features)


def test_a_numeric_shift_of_two_std_is_flagged_and_named_first() -> None:
    current = frame(500, seed=2)
    current["size"] += 2 * REFERENCE["size"].std()
    report = compare(SCHEMA, REFERENCE, current)
    assert report.drifted == ["size"]
    assert report.features[0].name == "size"
    assert report.features[0].score > 1.0
    assert report.features[0].verdict == "drift"
    assert any(reason.startswith("PSI") for reason in report.features[0].reasons)


def test_a_changed_category_share_is_flagged_and_named_first() -> None:
    current = frame(500, seed=2, colours=(0.1, 0.2, 0.7))
    report = compare(SCHEMA, REFERENCE, current)
    assert report.drifted == ["colour"]
    top = report.features[0]
    assert (top.name, top.kind) == ("colour", "categorical")
    shares = {b.label: (b.reference, b.current) for b in top.buckets}
    assert shares["blue"][0] == pytest.approx(0.2, abs=0.03)
    assert shares["blue"][1] == pytest.approx(0.7, abs=0.05)


def test_out_of_range_rate_flags_a_feature_whose_psi_alone_would_not() -> None:
    current = frame(500, seed=2)
    current.loc[:39, "size"] = 25.0  # 8% above the expected maximum 20
    report = compare(SCHEMA, REFERENCE, current, Thresholds(psi=5.0))
    size = by_name(report, "size")
    assert size.out_of_range_rate == pytest.approx(0.08)  # type: ignore[attr-defined]
    assert report.drifted == ["size"]
    assert "8.0% out of range > 5.0%" in size.reasons  # type: ignore[attr-defined]
    relaxed = compare(SCHEMA, REFERENCE, current, Thresholds(psi=5.0, out_of_range=0.1))
    assert relaxed.drifted == []


def test_an_unseen_category_is_counted_in_its_own_bucket() -> None:
    current = frame(500, seed=2)
    current.loc[:99, "colour"] = "purple"  # 20%
    report = compare(SCHEMA, REFERENCE, current)
    colour = by_name(report, "colour")
    assert colour.unseen_rate == pytest.approx(0.2)  # type: ignore[attr-defined]
    unseen = next(b for b in colour.buckets if b.label == "(unseen)")  # type: ignore[attr-defined]
    assert (unseen.reference, unseen.current) == (0.0, pytest.approx(0.2))
    assert "colour" in report.drifted


def test_missing_values_are_reported_and_a_column_gone_missing_drifts() -> None:
    current = frame(500, seed=2)
    current["count"] = None
    report = compare(SCHEMA, REFERENCE, current)
    count = by_name(report, "count")
    assert count.missing_rate == 1.0  # type: ignore[attr-defined]
    assert count.verdict == "drift"  # type: ignore[attr-defined]


def test_too_few_rows_is_its_own_verdict_not_drift() -> None:
    current = frame(10, seed=2)
    current["size"] += 100.0
    report = compare(SCHEMA, REFERENCE, current)
    assert report.drifted == []
    assert {f.verdict for f in report.features} == {"too few rows"}
    assert "at least 30" in report.features[0].reasons[0]


def test_free_text_is_not_measured_and_said_so() -> None:
    report = compare(SCHEMA, REFERENCE, frame(100, seed=2))
    assert report.not_measured == ["note"]
    assert "note" not in [f.name for f in report.features]


def test_a_psi_between_the_thresholds_is_watch() -> None:
    current = frame(500, seed=2)
    current["size"] += 0.5 * REFERENCE["size"].std()
    size = by_name(compare(SCHEMA, REFERENCE, current), "size")
    assert 0.1 < size.score < 0.25  # type: ignore[attr-defined]
    assert size.verdict == "watch"  # type: ignore[attr-defined]


def test_thresholds_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match=r"--psi 0\.25"):
        Thresholds(psi=0)
    with pytest.raises(ValueError, match="out-of-range"):
        Thresholds(out_of_range=2.0)


def test_predictions_and_latency_summaries() -> None:
    labels = [{"label": "a"}] * 3 + [{"label": "b"}]
    assert summarize_predictions(labels).shares == {"a": 0.75, "b": 0.25}
    values = summarize_predictions([{"value": float(v)} for v in range(101)])
    assert values.quantiles["p50"] == 50.0 and values.quantiles["p95"] == 95.0
    timing = latency([float(v) for v in range(1, 101)])
    assert timing is not None and timing.n == 100
    assert (round(timing.p50), round(timing.p95), round(timing.p99)) == (50, 95, 99)
    assert latency([]) is None
