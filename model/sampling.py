"""Valid records generated from a schema: for parity checks between two predictors."""

from __future__ import annotations

import math
import random

from model.schema import Feature, ModelSchema, Record

OPEN_RANGE = 1e6  # stand-in bound for a number feature without bounds
OUTSIDE = 0.1  # share of numbers drawn beyond the expected range (valid, predicted with warnings)


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _number_range(feature: Feature, rng: random.Random) -> tuple[float, float]:
    """Mostly the expected range; sometimes up to half its width beyond, within hard limits."""
    low = _first(feature.expected_min, feature.minimum, -OPEN_RANGE)
    high = _first(feature.expected_max, feature.maximum, OPEN_RANGE)
    assert low is not None and high is not None
    has_expected = feature.expected_min is not None or feature.expected_max is not None
    if has_expected and rng.random() < OUTSIDE:
        reach = max((high - low) / 2, 1.0)
        low, high = (low - reach, low) if rng.random() < 0.5 else (high, high + reach)
    hard_low = feature.minimum if feature.minimum is not None else -math.inf
    hard_high = feature.maximum if feature.maximum is not None else math.inf
    low, high = min(max(low, hard_low), hard_high), max(min(high, hard_high), hard_low)
    return low, high


def _value(feature: Feature, rng: random.Random) -> object:
    if not feature.required and rng.random() < 0.1:
        return None
    if feature.kind in ("number", "integer"):
        low, high = _number_range(feature, rng)
        if feature.kind == "integer":
            return rng.randint(int(-(-low // 1)), int(high // 1))
        return round(rng.uniform(low, high), 3)
    if feature.kind == "category":
        return rng.choice(feature.choices or [""])
    if feature.kind == "boolean":
        return rng.random() < 0.5
    return rng.choice(["", "a", "some text", str(feature.default or "")])


def generate_records(schema: ModelSchema, n: int, seed: int = 0) -> list[Record]:
    """`n` records that pass `schema.validate_records`, reproducible for a given seed; about
    10% of the numbers lie outside the expected range (within any hard limit), so that
    parity checks cover predictions with warnings too."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    return [{f.name: _value(f, rng) for f in schema.features} for _ in range(n)]


def parity_records(schema: ModelSchema, n_generated: int = 50, seed: int = 0) -> list[Record]:
    """The schema's examples, its defaults, and generated valid records."""
    return [*schema.examples, schema.defaults(), *generate_records(schema, n_generated, seed)]
