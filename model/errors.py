"""Errors of the model contract. Each says what is wrong and how to fix it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_MISSING = object()
REQUEST = "(request)"  # FieldError.field of an error about the whole request, not a feature


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan / inf, as JSON would not show them
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class FieldError:
    """One bad field of one record: which, what was expected, what was received."""

    record: int
    field: str
    expected: str
    received: Any = None
    missing: bool = False

    @property
    def message(self) -> str:
        if self.field == REQUEST:  # no feature to name: "the request must be valid JSON ..."
            got = "" if self.received is None else f", got {_show(self.received)}"
            return f"the request must be {self.expected}{got}"
        if self.missing:
            return f"feature {self.field!r} is missing: expected {self.expected}"
        if self.field == "(record)":
            return f"record {self.record} must be {self.expected}, got {_show(self.received)}"
        if self.expected.startswith("no such feature"):
            return f"unknown field {self.field!r} ({self.expected})"
        return f"feature {self.field!r} must be {self.expected}, got {_show(self.received)}"

    def to_json(self) -> dict[str, Any]:
        received = self.received
        if isinstance(received, float) and not math.isfinite(received):
            received = str(received)
        return {
            "record": self.record,
            "field": self.field,
            "expected": self.expected,
            "received": None if self.missing else received,
            "missing": self.missing,
            "message": self.message,
        }


class KitError(Exception):
    """Base of the kit's errors: the message is meant for the user, as is."""

    exit_code = 1


class InvalidInput(KitError, ValueError):
    """Records that do not match the schema; `errors` has one entry per bad field."""

    exit_code = 2

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        multi = len({e.record for e in errors}) > 1
        lines = [(f"record {e.record}: " if multi else "") + e.message for e in errors]
        super().__init__("; ".join(lines))


class UsageError(KitError):
    """A command was asked for something it must refuse (a busy port, an unsafe exposure)."""

    exit_code = 2


class ArtifactError(KitError):
    """A model artifact is missing, unreadable, or was changed since it was saved."""

    exit_code = 3


class ServiceUnavailable(KitError):
    """The model service cannot be reached or is not ready."""

    exit_code = 4
