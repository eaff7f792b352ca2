"""Valid records generated from a schema: for parity checks between two predictors."""

from __future__ import annotations

import random

from model.schema import Feature, ModelSchema, Record

OPEN_RANGE = 1e6  # stand-in bound for a number feature without bounds


def _value(feature: Feature, rng: random.Random) -> object:
    if not feature.required and rng.random() < 0.1:
        return None
    if feature.kind in ("number", "integer"):
        low = feature.minimum if feature.minimum is not None else -OPEN_RANGE
        high = feature.maximum if feature.maximum is not None else OPEN_RANGE
        if feature.kind == "integer":
            return rng.randint(int(-(-low // 1)), int(high // 1))
        return round(rng.uniform(low, high), 3)
    if feature.kind == "category":
        return rng.choice(feature.choices or [""])
    if feature.kind == "boolean":
        return rng.random() < 0.5
    return rng.choice(["", "a", "some text", str(feature.default or "")])


def generate_records(schema: ModelSchema, n: int, seed: int = 0) -> list[Record]:
    """`n` records that pass `schema.validate_records`, reproducible for a given seed."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    return [{f.name: _value(f, rng) for f in schema.features} for _ in range(n)]


def parity_records(schema: ModelSchema, n_generated: int = 50, seed: int = 0) -> list[Record]:
    """The schema's examples, its defaults, and generated valid records."""
    return [*schema.examples, schema.defaults(), *generate_records(schema, n_generated, seed)]
