"""How a model's metrics are shown: the main one first, and what data it was measured on.

Metric names carry their basis as a prefix: `test_` (a held-out split `kit train` kept aside),
`holdout_` (held-out rows the user gave to `kit import --holdout`), `sample_` (the import
sample itself, which may contain training rows: an optimistic figure, and said so).
"""

from __future__ import annotations

from dataclasses import dataclass

BASES = {
    "test_": "held-out split",
    "holdout_": "held-out data",
    "sample_": "on the import sample, which may include training rows",
}
MAIN = ("accuracy", "r2")  # classification, regression: the one figure shown first
SHOWN = ("accuracy", "f1_macro", "r2", "mae")  # what a header shows, in this order


@dataclass(frozen=True)
class Metric:
    name: str  # as stored, e.g. "sample_accuracy"
    short: str  # "accuracy"
    value: float
    basis: str  # "held-out split", ...

    @property
    def optimistic(self) -> bool:
        """Measured on rows the model may have been trained on."""
        return self.name.startswith("sample_")

    def text(self) -> str:
        return f"{self.short} {self.value:.3f}"


def _parse(name: str, value: float) -> Metric | None:
    for prefix, basis in BASES.items():
        if name.startswith(prefix):
            return Metric(name, name.removeprefix(prefix), value, basis)
    return None


def _best_basis(metrics: dict[str, float]) -> list[Metric]:
    """The metrics of the most honest basis present: test, then holdout, then sample."""
    for prefix in BASES:
        found = [m for n, v in metrics.items() if n.startswith(prefix) if (m := _parse(n, v))]
        if found:
            return found
    return []


def main_metric(metrics: dict[str, float]) -> Metric | None:
    """Accuracy (classifiers) or R² (regressors) on the most honest basis, if measured."""
    candidates = {m.short: m for m in _best_basis(metrics)}
    for short in MAIN:
        if short in candidates:
            return candidates[short]
    return None


def shown_metrics(metrics: dict[str, float]) -> list[Metric]:
    """The headline metrics of the most honest basis, in a fixed order."""
    candidates = {m.short: m for m in _best_basis(metrics)}
    return [candidates[short] for short in SHOWN if short in candidates]


def describe(metrics: dict[str, float]) -> str:
    """'accuracy 0.991, f1_macro 0.990 (held-out split)', or '' when nothing was measured."""
    shown = shown_metrics(metrics)
    if not shown:
        return ""
    return ", ".join(m.text() for m in shown) + f" ({shown[0].basis})"
