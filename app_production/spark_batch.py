"""`kit batch --engine spark`: the same job on Apache Spark (local mode here, a cluster by
configuration), writing Parquet.

Each partition loads the artifact once (sha256 verified, as everywhere) and scores its rows with
`model.batch.score_rows`, the function the SQLite engine uses: the same validation, the same
rejects, the same predictions and warnings. `mapInPandas` does the partitioning; BentoML's
`run_in_spark` does not work with new-style services, so it is not used.

Spark is an optional extra (`pip install pyspark==4.3.*`, Java 17). Traps handled here (see
NOTES-scale): workers start this venv's Python, the driver binds to loopback, logs are quiet
and temporary files stay in the job's folder. `KIT_SPARK_MASTER` (default `local[*]`) points it
at a cluster.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from model.errors import UsageError

OUTPUT = (
    "row_number long, key string, label string, probabilities string, value double, "
    "model_name string, model_version string, warnings string, errors string, record string"
)  # warnings: a JSON list (None when none), as in the SQLite engine; errors/record: rejects
LOG4J = (
    "rootLogger.level = error\nrootLogger.appenderRef.stdout.ref = console\n"
    "appender.console.type = Console\nappender.console.name = console\n"
)


@dataclass
class SparkResult:
    rows: int
    predicted: int
    rejected: int
    warned: int  # predicted, with warnings
    output: Path


def _quiet() -> None:
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


def _session(workdir: Path) -> Any:
    _quiet()
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UsageError(
            "the Spark engine needs pyspark: pip install 'pyspark==4.3.*' (and Java 17)"
        ) from exc
    conf = workdir / "conf"
    conf.mkdir()
    (conf / "log4j2.properties").write_text(LOG4J)
    os.environ.update(
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_CONF_DIR=str(conf),
    )
    spark = (
        SparkSession.builder.master(os.environ.get("KIT_SPARK_MASTER", "local[*]"))
        .appName("kit-batch")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.local.dir", str(workdir))
        .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={workdir}")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _scorer(model_dir: str, key: str | None, text: bool) -> Any:
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from model.batch import score_rows
        from model.batch_input import Chunk
        from model.predictor import LocalPredictor

        _quiet()
        predictor = LocalPredictor(Path(model_dir))  # once per partition
        info = predictor.info()
        features = info.model_schema.features
        for batch in batches:
            numbers = batch.pop("__row").tolist()
            keys: list[str | None] = [None] * len(batch)
            if key:
                keys = [None if v is None else str(v) for v in batch[key]]
            rows: list[dict[str, Any]] = []
            for start, end in _runs(numbers):  # consecutive row numbers: one Chunk each
                part = batch.iloc[start:end].reset_index(drop=True)
                present = [f for f in features if f.name in part.columns]
                chunk = Chunk(numbers[start], part, present, keys[start:end], text=text)
                predictions, rejects = score_rows(chunk, 0, predictor, info)
                rows += [
                    {
                        "row_number": r,
                        "key": k,
                        "label": label,
                        "probabilities": p,
                        "value": v,
                        "model_name": info.name,
                        "model_version": version,
                        "warnings": notes,
                        "errors": None,
                        "record": None,
                    }
                    for r, k, label, p, v, version, notes in predictions
                ]
                rows += [
                    {
                        "row_number": r,
                        "key": k,
                        "label": None,
                        "probabilities": None,
                        "value": None,
                        "model_name": info.name,
                        "model_version": info.version,
                        "warnings": None,
                        "errors": errors,
                        "record": record,
                    }
                    for r, k, errors, record in rejects
                ]
            yield pd.DataFrame(rows, columns=[c.split()[0] for c in OUTPUT.split(", ")])

    return score


def _runs(numbers: list[int]) -> Iterator[tuple[int, int]]:
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            yield start, i
            start = i


def run_spark_batch(
    path: Path, output: Path, model_dir: Path, key: str | None = None
) -> SparkResult:
    """Score `path` (CSV or Parquet) into the Parquet folder `output` (replaced if it exists)."""
    from model.artifact import Manifest
    from model.batch_input import check_columns, check_input

    check_input(path)
    schema = Manifest.from_file(model_dir / "manifest.json").schema_
    with tempfile.TemporaryDirectory(prefix="kit-spark-") as folder:
        spark = _session(Path(folder))
        try:
            if path.suffix.lower() == ".csv":
                frame = spark.read.csv(str(path), header=True, inferSchema=False)
            else:
                frame = spark.read.parquet(str(path))
            check_columns(schema, frame.columns, key, path)
            numbered = frame.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1]))
            frame = numbered.toDF([*frame.columns, "__row"])
            text = path.suffix.lower() == ".csv"
            scored = frame.mapInPandas(_scorer(str(model_dir), key, text), schema=OUTPUT)
            scored.write.mode("overwrite").parquet(str(output))
            written = spark.read.parquet(str(output))
            rows = written.count()
            rejected = written.filter("errors IS NOT NULL").count()
            warned = written.filter("warnings IS NOT NULL").count()
        finally:
            spark.stop()
    return SparkResult(rows, rows - rejected, rejected, warned, output)
