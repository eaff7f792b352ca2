"""Drift: how far production inputs have moved from the data a model was made from.

Pure pandas/numpy; `kit monitor` (app_production/monitor_report.py) reads the prediction log,
calls `compare` once per logged model version, and renders the result.

- numbers: the population stability index (PSI) over 10 quantile bins of the reference (plus
  a "missing" bucket when either side has missing values), the share of current values outside
  the schema's expected range, the missing rate;
- categories (and booleans): PSI over the categories, with one bucket for values neither the
  reference nor the schema's choices have, the share of such unseen values.

PSI = Σ (current − reference) · ln(current / reference) over the buckets' shares: 0 for the same
distribution, above 0.1 worth watching, above 0.25 a drift (the usual reading). A feature is
"drift" when its PSI, its out-of-range rate or its unseen rate passes the threshold; with fewer
than `Thresholds.min_rows` rows it is "too few rows", never drift.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from model.schema import Feature, ModelSchema

Verdict = Literal["drift", "watch", "ok", "too few rows"]
VERDICT_ORDER: dict[str, int] = {"drift": 0, "watch": 1, "ok": 2, "too few rows": 3}
BINS = 10
EPSILON = 1e-4  # floor of a bucket's share: an empty bucket gives no infinity
MISSING = "(missing)"
UNSEEN = "(unseen)"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # of a regressor's predicted values


@dataclass(frozen=True)
class Thresholds:
    """When a feature counts as drifted (any threshold passed) or worth watching."""

    psi: float = 0.25
    psi_watch: float = 0.1
    out_of_range: float = 0.05  # also the limit of the unseen-category rate
    min_rows: int = 30

    def __post_init__(self) -> None:
        if not self.psi > 0 or not 0 < self.out_of_range <= 1:
            raise ValueError(
                f"thresholds must be positive (and the out-of-range rate at most 1), got "
                f"PSI {self.psi:g} and out-of-range {self.out_of_range:g}: e.g. --psi 0.25 "
                "--out-of-range 0.05"
            )


@dataclass
class Bucket:
    """One bucket of a feature's distribution: its label and the share of each side in it."""

    label: str
    reference: float
    current: float


@dataclass
class FeatureDrift:
    """How one input moved; `score` is its PSI (0 when not measured)."""

    name: str
    kind: Literal["numeric", "categorical"]
    verdict: Verdict
    score: float
    n_reference: int
    n_current: int
    missing_rate: float  # of the current rows
    reference_missing_rate: float
    out_of_range_rate: float | None = None  # numbers with an expected range
    unseen_rate: float | None = None  # categories
    reasons: list[str] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)  # numbers: the inner bin edges
    expected_range: tuple[float | None, float | None] | None = None  # numbers: the schema's


@dataclass
class DriftReport:
    """Every input of one model version, the most drifted first."""

    features: list[FeatureDrift]
    thresholds: Thresholds
    n_reference: int
    n_current: int
    not_measured: list[str] = field(default_factory=list)  # free-text features

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.verdict == "drift"]


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float:
    """PSI of two lists of bucket shares (each summing to 1), shares floored at EPSILON."""
    ref = np.clip(np.asarray(reference, dtype=float), EPSILON, None)
    cur = np.clip(np.asarray(current, dtype=float), EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _shares(counts: np.ndarray, total: int) -> np.ndarray:
    return counts / total if total else np.zeros_like(counts, dtype=float)


def _numbers(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers))


def _numeric(feature: Feature, ref: pd.Series, cur: pd.Series) -> FeatureDrift:
    ref_num, cur_num = _numbers(ref), _numbers(cur)
    ref_ok, cur_ok = ref_num.dropna().to_numpy(), cur_num.dropna().to_numpy()
    quantiles = np.quantile(ref_ok, np.linspace(0, 1, BINS + 1)[1:-1]) if len(ref_ok) else []
    edges = np.unique(quantiles)  # ties (integers, constants) merge bins
    # bins (-inf, e1], (e1, e2], ..., (ek, inf): open-ended, so every value falls in one
    ref_counts = np.bincount(np.searchsorted(edges, ref_ok), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur_ok), minlength=len(edges) + 1)
    labels = _bin_labels(edges)
    ref_missing, cur_missing = len(ref) - len(ref_ok), len(cur) - len(cur_ok)
    if ref_missing or cur_missing:
        ref_counts, cur_counts = (
            np.append(ref_counts, ref_missing),
            np.append(cur_counts, cur_missing),
        )
        labels.append(MISSING)
    out_of_range = None
    low, high = feature.expected_min, feature.expected_max
    if (low is not None or high is not None) and len(cur_ok):
        outside = (cur_ok < (-math.inf if low is None else low)) | (
            cur_ok > (math.inf if high is None else high)
        )
        out_of_range = float(outside.mean())
    result = _counted(
        feature.name,
        "numeric",
        (len(ref), ref_missing),
        (len(cur), cur_missing),
        out_of_range_rate=out_of_range,
        edges=[float(e) for e in edges],
        expected_range=(low, high) if low is not None or high is not None else None,
    )
    return _finish(result, labels, ref_counts, cur_counts, len(ref_ok))


def _bin_labels(edges: np.ndarray) -> list[str]:
    if not len(edges):
        return ["all"]
    bounds = [f"{e:.4g}" for e in edges]
    inner = [f"({a}, {b}]" for a, b in itertools.pairwise(bounds)]
    return [f"≤ {bounds[0]}", *inner, f"> {bounds[-1]}"]


def _texts(values: pd.Series) -> pd.Series:
    """Categories as texts (booleans as 'True'/'False'), missing values as None."""
    return values.astype(object).map(_text)


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _categorical(feature: Feature, ref: pd.Series, cur: pd.Series) -> FeatureDrift:
    ref_text, cur_text = _texts(ref), _texts(cur)
    known = list(dict.fromkeys([*(feature.choices or []), *sorted(ref_text.dropna().unique())]))
    if feature.kind == "boolean":
        known = list(dict.fromkeys(["False", "True", *known]))
    ref_counts = np.array([int((ref_text == c).sum()) for c in known], dtype=float)
    cur_counts = np.array([int((cur_text == c).sum()) for c in known], dtype=float)
    labels = list(known)
    cur_present = cur_text.dropna()
    unseen = int((~cur_present.isin(known)).sum())
    ref_missing, cur_missing = int(ref_text.isna().sum()), int(cur_text.isna().sum())
    ref_counts, cur_counts = np.append(ref_counts, 0), np.append(cur_counts, unseen)
    labels.append(UNSEEN)
    if ref_missing or cur_missing:
        ref_counts, cur_counts = (
            np.append(ref_counts, ref_missing),
            np.append(cur_counts, cur_missing),
        )
        labels.append(MISSING)
    result = _counted(
        feature.name,
        "categorical",
        (len(ref), ref_missing),
        (len(cur), cur_missing),
        unseen_rate=unseen / len(cur_present) if len(cur_present) else None,
    )
    return _finish(result, labels, ref_counts, cur_counts, len(ref_text.dropna()))


def _counted(
    name: str,
    kind: Literal["numeric", "categorical"],
    reference: tuple[int, int],
    current: tuple[int, int],
    **rest: Any,
) -> FeatureDrift:
    """A FeatureDrift before scoring: sizes and missing rates of (rows, missing) counts."""
    (n_ref, ref_missing), (n_cur, cur_missing) = reference, current
    return FeatureDrift(
        name=name,
        kind=kind,
        verdict="ok",
        score=0.0,
        n_reference=n_ref,
        n_current=n_cur,
        missing_rate=cur_missing / n_cur if n_cur else 0.0,
        reference_missing_rate=ref_missing / n_ref if n_ref else 0.0,
        **rest,
    )


def _finish(
    result: FeatureDrift,
    labels: list[str],
    ref_counts: np.ndarray,
    cur_counts: np.ndarray,
    ref_present: int,
) -> FeatureDrift:
    """Shares, PSI and the verdict (thresholds are applied by `compare`)."""
    ref_shares = _shares(ref_counts, result.n_reference)
    cur_shares = _shares(cur_counts, result.n_current)
    result.buckets = [
        Bucket(label, float(r), float(c))
        for label, r, c in zip(labels, ref_shares, cur_shares, strict=True)
    ]
    if result.n_current and ref_present:
        result.score = psi(ref_shares, cur_shares)
    return result


def _judge(result: FeatureDrift, thresholds: Thresholds) -> None:
    if min(result.n_current, result.n_reference) < thresholds.min_rows:
        result.verdict = "too few rows"
        result.reasons = [
            f"{result.n_current} current and {result.n_reference} reference rows: at least "
            f"{thresholds.min_rows} of each are needed to judge"
        ]
        return
    reasons = []
    if result.score > thresholds.psi:
        reasons.append(f"PSI {result.score:.2f} > {thresholds.psi:g}")
    for rate, what in ((result.out_of_range_rate, "out of range"), (result.unseen_rate, "unseen")):
        if rate is not None and rate > thresholds.out_of_range:
            reasons.append(f"{rate:.1%} {what} > {thresholds.out_of_range:.1%}")
    result.reasons = reasons
    if reasons:
        result.verdict = "drift"
    elif result.score > thresholds.psi_watch:
        result.verdict = "watch"
        result.reasons = [f"PSI {result.score:.2f} > {thresholds.psi_watch:g} (watch)"]


def compare(
    schema: ModelSchema,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: Thresholds | None = None,
) -> DriftReport:
    """Each input of `schema`: `current` (e.g. logged records) against `reference`.

    A column absent from a frame counts as all missing; free-text features are not measured.
    """
    thresholds = thresholds or Thresholds()
    features, skipped = [], []
    for feature in schema.features:
        ref = (
            reference[feature.name]
            if feature.name in reference
            else pd.Series([None] * len(reference), dtype=object)
        )
        cur = (
            current[feature.name]
            if feature.name in current
            else pd.Series([None] * len(current), dtype=object)
        )
        if feature.kind in ("number", "integer"):
            result = _numeric(feature, ref, cur)
        elif feature.kind in ("category", "boolean"):
            result = _categorical(feature, ref, cur)
        else:
            skipped.append(feature.name)
            continue
        _judge(result, thresholds)
        features.append(result)
    features.sort(key=lambda f: (VERDICT_ORDER[f.verdict], -f.score, f.name))
    return DriftReport(features, thresholds, len(reference), len(current), skipped)


# --- what the model answered, and how fast ---------------------------------------------------


@dataclass
class PredictionSummary:
    """The predictions of one version: class shares, or quantiles of the values."""

    n: int
    shares: dict[str, float] = field(default_factory=dict)  # classification
    quantiles: dict[str, float] = field(default_factory=dict)  # regression: "p5" ... "p95"


@dataclass
class Latency:
    """Latency percentiles of one version's predictions, in milliseconds."""

    n: int
    p50: float
    p95: float
    p99: float


def summarize_predictions(predictions: Sequence[Mapping[str, Any]]) -> PredictionSummary:
    """Class shares when the predictions have labels, else quantiles of their values."""
    labels = [str(p["label"]) for p in predictions if p.get("label") is not None]
    if labels:
        counts = pd.Series(labels).value_counts(normalize=True)
        return PredictionSummary(
            n=len(labels), shares={str(k): float(v) for k, v in counts.items()}
        )
    values = np.array(
        [float(p["value"]) for p in predictions if isinstance(p.get("value"), int | float)]
    )
    values = values[np.isfinite(values)]
    if not len(values):
        return PredictionSummary(n=0)
    return PredictionSummary(
        n=len(values),
        quantiles={f"p{round(q * 100)}": float(np.quantile(values, q)) for q in QUANTILES},
    )


def latency(latencies_ms: Sequence[float]) -> Latency | None:
    """p50, p95 and p99 of the latencies (None when there are none)."""
    values = np.array([v for v in latencies_ms if math.isfinite(v)], dtype=float)
    if not len(values):
        return None
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
    return Latency(n=len(values), p50=p50, p95=p95, p99=p99)
