"""Reading a batch input (CSV or Parquet) in chunks, as records typed by the schema.

A CSV is read as text and each cell is converted by its feature's kind, the same way in every
chunk ("181" and "181.0" become 181 for an integer feature; "abc" stays "abc" so that the
schema's validation names it). Parquet cells arrive typed; NumPy scalars become Python values.
Empty cells, NA markers ("NA", "null", ...) and NaN become None (missing). Memory stays flat:
one chunk at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.errors import UsageError
from model.schema import Feature, ModelSchema, Record

FORMATS = (".csv", ".parquet", ".pq")
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
MISSING = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"}  # CSV cells meaning "no value"


@dataclass
class Chunk:
    """`frame` holds the raw cells; `record(i)` types row i for the schema (on demand)."""

    first_row: int  # 0-based number of the chunk's first data row in the file
    frame: pd.DataFrame
    features: list[Feature]  # the schema's features present in the file
    keys: list[str | None]  # the --key column's values, when one was named
    text: bool  # read from a CSV: every cell a string
    _cells: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def record(self, i: int) -> Record:
        if not self._cells:
            self._cells = {f.name: self.frame[f.name].tolist() for f in self.features}
        return {f.name: cell(f, self._cells[f.name][i]) for f in self.features}


@dataclass
class Cleared:
    """What the column fast path found in a CSV chunk."""

    rows: np.ndarray  # bool per row: valid for sure
    columns: dict[str, Any]  # the model's columns, for all rows
    warnings: dict[int, list[str]]  # row index -> its warnings, for cleared rows that have any


def cleared(schema: ModelSchema, chunk: Chunk) -> Cleared:
    """Rows of a CSV chunk that are valid for sure, the model's columns, and their warnings.

    Column by column in C (pandas), conservatively: a row is cleared only if every feature's
    cell is certainly valid (a number within the hard limits, a known category, a missing
    optional value). Anything else (booleans, free text, odd numbers) goes through the exact
    per-row path, which alone writes errors: the fast path can only skip work, never accept a
    bad row. Warnings: a mask of unusual cells, then `Feature.warning` on those cells only.
    """
    size = len(chunk)
    ok = np.zeros(size, dtype=bool) if not chunk.text else np.ones(size, dtype=bool)
    columns: dict[str, Any] = {}
    unusual: list[tuple[Feature, np.ndarray, np.ndarray]] = []  # feature, mask, cell values
    for f in schema.features:
        if f.name not in chunk.frame.columns or f.kind in ("boolean", "text") or not chunk.text:
            ok[:] = False
            continue
        raw = chunk.frame[f.name].astype(object)
        missing = (raw.isin(MISSING) | raw.isna()).to_numpy()  # isna: Spark's nulls
        optional_missing = missing & (not f.required)
        if f.kind in ("number", "integer"):
            values = pd.to_numeric(raw.where(~missing), errors="coerce").to_numpy(
                dtype=float, copy=True
            )
            with np.errstate(invalid="ignore"):
                good = np.isfinite(values)
                if f.kind == "integer":
                    good &= values == np.floor(values)
                if f.minimum is not None:
                    good &= values >= f.minimum
                if f.maximum is not None:
                    good &= values <= f.maximum
            values[missing] = np.nan
            columns[f.name] = values
            unusual.append((f, _outside(f, values), values))
        else:  # category
            known = raw.isin(f.choices or []).to_numpy()
            good = ~missing if f.allow_unknown else known
            columns[f.name] = np.where(missing, np.nan, raw.to_numpy(dtype=object))
            if f.allow_unknown:
                unusual.append((f, ~missing & ~known, columns[f.name]))
        ok &= good | optional_missing
    return Cleared(ok, columns, _warnings(unusual, ok))


def _outside(feature: Feature, values: np.ndarray) -> np.ndarray:
    """Cells outside the feature's expected range (NaN is not)."""
    outside = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        if feature.expected_min is not None:
            outside |= values < feature.expected_min
        if feature.expected_max is not None:
            outside |= values > feature.expected_max
    return outside


def _warnings(
    unusual: list[tuple[Feature, np.ndarray, np.ndarray]], ok: np.ndarray
) -> dict[int, list[str]]:
    """Each cleared row's warnings, in feature order: `Feature.warning` on flagged cells only."""
    found: dict[int, list[str]] = {}
    for feature, mask, values in unusual:  # in feature order
        flagged = np.flatnonzero(mask & ok)
        if not len(flagged):
            continue
        distinct, which = np.unique(values[flagged], return_inverse=True)
        messages = [feature.warning(v) for v in distinct.tolist()]  # once per distinct value
        for i, m in zip(flagged.tolist(), which.tolist(), strict=True):
            if messages[m] is not None:
                found.setdefault(i, []).append(messages[m])
    return found


def _number(raw: str) -> Any:
    try:
        return float(raw)
    except ValueError:
        return raw  # the schema's validation reports it, by name


def _from_text(feature: Feature, raw: str) -> Any:
    if feature.kind == "number":
        return _number(raw)
    if feature.kind == "integer":
        value = _number(raw)
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if feature.kind == "boolean":
        lowered = raw.strip().lower()
        return True if lowered in TRUE else False if lowered in FALSE else raw
    return raw


def _from_typed(feature: Feature, raw: Any) -> Any:
    value = raw.item() if hasattr(raw, "item") else raw
    if feature.kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def cell(feature: Feature, raw: Any) -> Any:
    """One input cell as the value the schema validates (None when missing)."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or raw is pd.NA:
        return None
    if isinstance(raw, str):
        return None if raw in MISSING else _from_text(feature, raw)
    return _from_typed(feature, raw)


def count_rows(path: Path) -> int:
    """Data rows in the file (a fast pass for the progress bar)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        handle.seek(-1, 2)
        ends_with_newline = handle.read(1) == b"\n"
    return max(0, lines - 1 + (0 if ends_with_newline else 1))  # minus the header line


def check_input(path: Path) -> None:
    """An existing CSV or Parquet file, or a UsageError that says what is wrong."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"input {path} must be a CSV or Parquet file ({', '.join(FORMATS)})")
    if not path.is_file():
        raise UsageError(f"input file {path} does not exist")


def _frames(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_size)
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()


def check_columns(schema: ModelSchema, columns: list[str], key: str | None, path: Path) -> None:
    """Every required feature, and the --key column, must be a column of the input; the error
    names what is missing and lists what there is (the file's columns, the model's features)."""
    missing = [f.name for f in schema.features if f.required and f.name not in columns]
    bad_key = key is not None and key not in columns
    if not missing and not bad_key:
        return
    listed = f"(its columns: {', '.join(map(str, columns))})"
    problems = []
    if missing:
        features = ", ".join(f.name for f in schema.features)
        problems.append(
            f"{path} has no column {', '.join(map(repr, missing))} {listed}. "
            f"Rename the columns to the model's features: {features}"
        )
    if bad_key:
        problems.append(f"--key {key!r} is not a column of {path}{'' if missing else ' ' + listed}")
    raise UsageError("; ".join(problems))


def input_columns(path: Path) -> list[str]:
    """The column names of a CSV or Parquet input, read from its header alone."""
    check_input(path)
    if path.suffix.lower() == ".csv":
        return [str(c) for c in pd.read_csv(path, nrows=0, dtype=str).columns]
    import pyarrow.parquet as pq

    return [str(name) for name in pq.ParquetFile(path).schema_arrow.names]


def read_chunks(
    path: Path, schema: ModelSchema, chunk_size: int, key: str | None = None
) -> Iterator[Chunk]:
    """The input, `chunk_size` rows at a time, as records of the schema's features."""
    check_input(path)
    first_row = 0
    checked = False
    for frame in _frames(path, chunk_size):
        if not checked:
            check_columns(schema, [str(c) for c in frame.columns], key, path)
            checked = True
        present = [f for f in schema.features if f.name in frame.columns]
        keys: list[str | None] = (
            [None if v in ("", None) else str(v) for v in frame[key].tolist()]
            if key is not None
            else [None] * len(frame)
        )
        yield Chunk(first_row, frame, present, keys, text=path.suffix.lower() == ".csv")
        first_row += len(frame)
