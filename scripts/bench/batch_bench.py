"""How fast `kit batch` scores a large file, next to the model's own batched speed.

    python -m scripts.bench.batch_bench [--rows 1000000] [--out scripts/bench/results]

Writes batch.json and batch.md: the in-process floor (LocalPredictor.predict_frame on frames of
one chunk, no I/O, no validation), then `kit batch` end to end as users run it (a subprocess
reading a CSV, validating every row, writing SQLite), its rows/s, the ratio (target >= 0.5),
and its peak RSS, sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from model.artifact import ModelStore
from model.predictor import LocalPredictor, records_to_frame
from model.sampling import parity_records
from model.settings import PACKAGE_ROOT, TELEMETRY_OFF, KitSettings
from scripts.bench.report import machine

CHUNK = 10_000


def make_input(local: LocalPredictor, rows: int, path: Path) -> int:
    """`rows` records cycling through the parity records; one in 1000 made invalid."""
    base = parity_records(local.schema)
    frame = pd.DataFrame(
        [base[i % len(base)] for i in range(rows)], columns=local.schema.feature_names
    )
    frame.insert(0, "id", range(rows))
    number = next(f.name for f in local.schema.features if f.kind == "number")
    frame[number] = frame[number].astype(object)
    frame.loc[frame.index % 1000 == 999, number] = "x"  # a wrong type: rejected (1e9 only warns)
    frame.to_csv(path, index=False)
    return int((frame.index % 1000 == 999).sum())


def floor_rows_per_s(local: LocalPredictor, seconds: float = 10.0) -> float:
    base = local.schema.validate_records(parity_records(local.schema))
    frame = records_to_frame(local.schema, [base[i % len(base)] for i in range(CHUNK)])
    local.predict_frame(frame)  # warm up
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        local.predict_frame(frame)
        done += CHUNK
    return done / (time.perf_counter() - began)


def run_kit_batch(source: Path, database: Path, home: Path) -> tuple[float, float, str]:
    env = {**os.environ, **TELEMETRY_OFF, "KIT_HOME": str(home)}
    command = [
        sys.executable,
        "-m",
        "scripts.cli",
        "batch",
        str(source),
        "--out",
        str(database),
        "--key",
        "id",
        "--chunk-size",
        str(CHUNK),
    ]
    began = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=PACKAGE_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = 0.0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss / 2**20)
        except psutil.Error:
            break
        time.sleep(0.2)
    output = process.communicate()[0]
    if process.returncode != 0:
        raise SystemExit(f"kit batch failed ({process.returncode}):\n{output}")
    return (
        time.perf_counter() - began,
        peak,
        next(line for line in output.splitlines() if line.startswith("✓")),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=PACKAGE_ROOT / "scripts/bench/results")
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or KitSettings().home
    local = LocalPredictor(ModelStore(home).current())
    with tempfile.TemporaryDirectory(prefix="kit-batch-bench-") as folder:
        source = Path(folder) / "input.csv"
        invalid = make_input(local, args.rows, source)
        floor = floor_rows_per_s(local)
        seconds, peak_mb, summary = run_kit_batch(source, Path(folder) / "out.db", home)
    rows_per_s = args.rows / seconds
    report: dict[str, Any] = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "model": f"{local.manifest.name}:{local.manifest.version} ({local.manifest.estimator})",
        "rows": args.rows,
        "invalid_rows": invalid,
        "chunk_size": CHUNK,
        "floor_rows_per_s": floor,
        "kit_batch_seconds": seconds,
        "kit_batch_rows_per_s": rows_per_s,
        "ratio": rows_per_s / floor,
        "target_ratio": 0.5,
        "met": rows_per_s / floor >= 0.5,
        "kit_batch_peak_rss_mb": peak_mb,
        "kit_batch_summary": summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    (args.out / "batch.md").write_text(
        f"# `kit batch` on {args.rows:,} rows ({report['created_at']})\n\n"
        f"Model {report['model']}; {m['cores']} cores ({m['cpu_model']}), Python {m['python']}.\n\n"
        "| measure | value |\n|---|---|\n"
        f"| in-process batched predict (frames of {CHUNK:,} rows, no I/O) | {floor:,.0f} rows/s |\n"
        f"| `kit batch` end to end (CSV → validation → SQLite) | {rows_per_s:,.0f} rows/s "
        f"({seconds:.1f} s) |\n"
        f"| ratio (target >= 0.5) | {rows_per_s / floor:.2f} {'✅' if report['met'] else '❌'} |\n"
        f"| `kit batch` peak RSS | {peak_mb:.0f} MB |\n"
        f"| invalid rows (to `rejects`) | {invalid:,} |\n"
    )
    print((args.out / "batch.md").read_text())


if __name__ == "__main__":
    main()
