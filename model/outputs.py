"""Model answers that are not numbers: infinity or NaN from an input far beyond the sample.

Kept free of pandas and scikit-learn: the service's supervisor imports it at start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from model.errors import FieldError
from model.schema import ModelSchema, Record


def finite_output(value: float | None, probabilities: dict[str, float] | None) -> bool:
    numbers = [value] if value is not None else list((probabilities or {}).values())
    return all(math.isfinite(v) for v in numbers)


def non_finite_errors(schema: ModelSchema, bad: Sequence[tuple[int, Record]]) -> list[FieldError]:
    """Valid records the model could not compute with (it returned infinity or NaN): one error
    per value outside the sample's range (the likely cause), else one for the record.

    This is what "refuse only what the model cannot take" means: the input was valid and was
    tried; the answer was not a number, so there is no prediction to give.
    """
    errors = []
    for index, record in bad:
        fields = [f for f in schema.features if f.warning(record.get(f.name)) is not None]
        for feature in fields:
            usual = feature.expected_range()
            errors.append(
                FieldError(
                    index,
                    feature.name,
                    f"a value the model can compute with (it returned infinity or NaN; "
                    f"the sample's range is {usual})",
                    record.get(feature.name),
                )
            )
        if not fields:
            expected = "a record the model can compute with (it returned infinity or NaN)"
            errors.append(FieldError(index, "(record)", expected, dict(record)))
    return errors
