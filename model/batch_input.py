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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from model.errors import UsageError
from model.schema import Feature, ModelSchema, Record

FORMATS = (".csv", ".parquet", ".pq")
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
MISSING = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"}  # CSV cells meaning "no value"


@dataclass
class Chunk:
    first_row: int  # 0-based number of the chunk's first data row in the file
    records: list[Record]
    keys: list[str | None]  # the --key column's values, when one was named


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


def _check_columns(schema: ModelSchema, columns: list[str], key: str | None, path: Path) -> None:
    missing = [f.name for f in schema.features if f.required and f.name not in columns]
    if missing or (key is not None and key not in columns):
        wanted = missing + ([key] if key is not None and key not in columns else [])
        raise UsageError(
            f"{path} has no column {', '.join(map(repr, wanted))}; its columns are {columns}. "
            "Rename the columns to the model's features (`kit status` lists them)"
        )


def read_chunks(
    path: Path, schema: ModelSchema, chunk_size: int, key: str | None = None
) -> Iterator[Chunk]:
    """The input, `chunk_size` rows at a time, as records of the schema's features."""
    check_input(path)
    first_row = 0
    checked = False
    for frame in _frames(path, chunk_size):
        if not checked:
            _check_columns(schema, [str(c) for c in frame.columns], key, path)
            checked = True
        present = [f for f in schema.features if f.name in frame.columns]
        columns = {f.name: frame[f.name].tolist() for f in present}
        records = [
            {f.name: cell(f, columns[f.name][i]) for f in present} for i in range(len(frame))
        ]
        keys: list[str | None] = (
            [None if v in ("", None) else str(v) for v in frame[key].tolist()]
            if key is not None
            else [None] * len(frame)
        )
        yield Chunk(first_row, records, keys)
        first_row += len(frame)
