"""Anonymisation on Spark: `anomigan anonymize --engine spark` (CSV or Parquet in, Parquet out).

The same job as `anomigan.mlops.batch` on a cluster or on `local[N]`: every Arrow batch of every
partition goes through the encoder pyfunc's `predict_records`, so validation and its value-free
messages are the local path's. Spark reads CSV cells as text (the codec parses numbers and
names the bad row; Spark's typed CSV reader would turn bad numbers into nulls, and its
FAILFAST errors quote the malformed line). The model folder is shipped to a cluster's executors
with `SparkContext.addFile` (read in place on `local[N]`), loaded once per Python worker.

Randomness: each partition draws its own seed sequence (OS entropy, or `(seed, partition)`
with `--seed`) and each batch a child of it, so no two partitions or batches share noise.

The output is written to a temporary folder beside `--output` and renamed onto it only when
the job has succeeded: a failed run leaves nothing behind and an existing output untouched.
Rows in messages are input rows counted from 1 in Spark's reading order (for one CSV file:
data rows after the header, as in the local path).

The MLflow-native way, `mlflow.pyfunc.spark_udf`, works on the same registered encoder (its
signature names the columns and types the result struct); see the README's Spark section.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES  # what pandas' CSV reader calls missing

from anomigan.data.codec import SchemaError
from anomigan.data.schema import row_labels
from anomigan.mlops.batch import load_encoder_model
from anomigan.mlops.serving import InvalidRecords, check_seed

# pyspark is imported where it is used: it is the optional `spark` extra, and the rest of
# anomigan (the CLI's file engine among it) must import without it.

DEFAULT_MASTER = "local[2]"
CORRUPT = "_corrupt_record"
#: Marks a worker's bad-input error so the driver can print it alone (Spark's own exception
#: text carries the Python traceback and may carry values from Arrow or the CSV reader).
_BAD_INPUT = re.compile(r"\[anomigan-bad-input partition=(\d+)\] ([^\n]*)")
_ROWS = re.compile(r"rows \[([0-9, ]*)\]")
_models: dict[tuple[str, int | None], object] = {}


class BadPartition(ValueError):
    """A worker's value-free error about rows of its partition (0-based within it)."""

    def __init__(self, partition: int, message: str):
        super().__init__(f"[anomigan-bad-input partition={partition}] {message}")


def result_type(model_uri: str):
    """The Spark struct of an encoder's anonymised record, from its output signature: the
    `result_type` of `mlflow.pyfunc.spark_udf` and the schema of `--engine spark`'s output.

    Fields are nullable, as Spark types pandas results (the signature's `required` columns
    would make Spark 4 refuse the batches)."""
    from pyspark.sql.types import StructField, StructType

    outputs = mlflow.models.get_model_info(model_uri).signature.outputs.as_spark_schema()
    return StructType([StructField(f.name, f.dataType, nullable=True) for f in outputs.fields])


def spark_session(master: str | None = None):
    """The active SparkSession (a notebook, Databricks), the one `spark-submit` configured,
    or a new one on `master` (default local[2])."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    builder = SparkSession.builder.appName("anomigan-anonymize")
    if master is not None or "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        builder = builder.master(master or DEFAULT_MASTER)
        if (master or DEFAULT_MASTER).startswith("local"):
            # local workers run this interpreter, not the first `python3` on PATH
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return builder.config("spark.ui.showConsoleProgress", "false").getOrCreate()


def _worker_model(folder: str, max_resample: int | None):
    """The encoder in this Python worker, loaded once per model folder and guard setting."""
    key = (folder, max_resample)
    if key not in _models:
        model = mlflow.pyfunc.load_model(folder).unwrap_python_model()
        if max_resample is not None:
            model.anonymizer = dataclasses.replace(model.anonymizer, max_resample=max_resample)
        _models[key] = model
    return _models[key]


def _partition_job(folder: str, shipped: bool, seed, allow_missing, max_resample, csv: bool):
    """The function `mapInPandas` runs on each partition's batches; `folder` is the model's
    path on the driver, or its name among the files shipped to the executors."""

    def run(batches):
        from pyspark import SparkFiles, TaskContext

        partition = TaskContext.get().partitionId()
        model = _worker_model(SparkFiles.get(folder) if shipped else folder, max_resample)
        sequence = np.random.SeedSequence(None if seed is None else [seed, partition])
        start = 0
        for batch in batches:
            batch.index = pd.RangeIndex(start, start + len(batch))
            start += len(batch)
            if csv:
                corrupt = batch.pop(CORRUPT).notna().to_numpy()
                if corrupt.any():
                    raise BadPartition(
                        partition,
                        f"malformed CSV in rows {row_labels(batch.index, corrupt)} "
                        "(wrong number of fields?)",
                    )
                batch = batch.where(~batch.isin(STR_NA_VALUES), None)
            chunk_seed = int(sequence.spawn(1)[0].generate_state(1, np.uint64)[0] >> np.uint64(1))
            try:
                yield model.predict_records(batch, seed=chunk_seed, allow_missing=allow_missing)
            except (InvalidRecords, SchemaError) as exc:
                raise BadPartition(partition, str(exc)) from None

    return run


def _read(spark, source: str, codec):
    """(DataFrame, is_csv) of the input; columns checked against the codec before any job."""
    from pyspark.sql.types import StringType, StructField, StructType

    local = Path(source)
    if "://" not in source and not local.exists():
        raise FileNotFoundError(f"{source}: input not found")
    if source.lower().rstrip("/").endswith(".csv"):
        if local.is_file() and local.stat().st_size == 0:
            raise SchemaError(f"{source}: file is empty")
        header = spark.read.option("header", True).csv(source).columns
        codec.check_columns(header)
        schema = StructType([StructField(c, StringType()) for c in header])
        schema.add(StructField(CORRUPT, StringType()))
        frame = (
            spark.read.schema(schema)
            .option("header", True)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .option("ignoreLeadingWhiteSpace", True)
            .csv(source)
        )
        return frame, True
    frame = spark.read.parquet(source)
    codec.check_columns(frame.columns)
    return frame, False


def _global_rows(frame, partition: int, message: str) -> str:
    """`message` with its 0-based in-partition rows turned into 1-based input rows."""
    from pyspark.sql import functions as F

    counts = dict(
        frame.groupBy(F.spark_partition_id().alias("p")).count().select("p", "count").collect()
    )
    offset = sum(n for p, n in counts.items() if p < partition)

    def shift(match: re.Match) -> str:
        rows = [int(r) + offset + 1 for r in match.group(1).split(",") if r.strip()]
        return "rows [" + ", ".join(map(str, rows)) + "]"

    return _ROWS.sub(shift, message, count=1)


@contextlib.contextmanager
def _committed(spark, output: str):
    """A temporary path beside `output` to write into, renamed onto it only on success."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    target = jvm.org.apache.hadoop.fs.Path(output)
    fs = target.getFileSystem(conf)
    parent = target.getParent()
    if parent is not None and not fs.exists(parent):
        raise FileNotFoundError(f"{parent}: output folder not found")

    def beside(suffix: str):
        return jvm.org.apache.hadoop.fs.Path(
            parent, f".{target.getName()}.{uuid.uuid4().hex}.{suffix}"
        )

    tmp = beside("part")
    try:
        yield tmp.toString()
        old = None
        if fs.exists(target):
            old = beside("old")
            if not fs.rename(target, old):
                raise OSError(f"{output}: could not move the existing output aside")
        if not fs.rename(tmp, target):
            if old is not None:
                fs.rename(old, target)
            raise OSError(f"{output}: could not move the result into place")
        if old is not None:
            fs.delete(old, True)
    finally:
        if fs.exists(tmp):
            fs.delete(tmp, True)


def anonymize_spark(
    model_uri: str,
    input_path: str | Path,
    output_path: str | Path,
    seed: int | None = None,
    allow_missing: bool = False,
    max_resample: int | None = None,
    batch_size: int = 10_000,
    master: str | None = None,
) -> dict:
    """Anonymise a CSV file or Parquet table on Spark into a Parquet folder; rows and speed.

    `batch_size` is Spark's Arrow batch (records per `predict_records` call).
    """
    src, dst = str(input_path), str(output_path)
    check_seed(seed)
    if max_resample is not None and max_resample < 0:
        raise ValueError(f"--max-resample must be 0 or more, got {max_resample}")
    if batch_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {batch_size}")
    if dst.lower().endswith(".csv"):
        raise ValueError("--engine spark writes a Parquet folder: name --output e.g. out.parquet")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError("--output must differ from --input")
    codec = load_encoder_model(model_uri).codec  # a clear error before Spark starts
    staging = Path(tempfile.mkdtemp(prefix="anomigan-spark-"))
    # addFile ships a folder under its own name, once per name and session: a unique one
    name = f"anomigan-model-{uuid.uuid4().hex}"
    folder = staging / name
    folder.mkdir()
    mlflow.artifacts.download_artifacts(model_uri, dst_path=str(folder))
    output_schema = result_type(str(folder))
    spark = spark_session(master)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
    # local[N] shares the driver's disk, as in `spark_udf`; a cluster gets a copy of the folder
    shipped = not spark.sparkContext.master.startswith("local")
    try:
        if shipped:
            spark.sparkContext.addFile(str(folder), recursive=True)
        start = time.perf_counter()
        frame, csv = _read(spark, src, codec)
        job = _partition_job(
            name if shipped else str(folder), shipped, seed, allow_missing, max_resample, csv
        )
        with _committed(spark, dst) as tmp:
            try:
                frame.mapInPandas(job, output_schema).write.parquet(tmp)
            except Exception as exc:
                found = _BAD_INPUT.search(str(exc))
                if found is None:
                    raise RuntimeError(
                        f"the Spark job failed ({type(exc).__name__}); details withheld, "
                        "they may include data values"
                    ) from None
                message = _global_rows(frame, int(found.group(1)), found.group(2))
                raise SchemaError(
                    f"{src}: {message} (rows are input rows counted from 1"
                    + (" after the header)" if csv else ")")
                ) from None
            rows = spark.read.schema(output_schema).parquet(tmp).count()
            if rows == 0:
                raise SchemaError(f"{src}: the input has no data rows")
        seconds = time.perf_counter() - start
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "rows": rows,
        "output": dst,
        "seconds": seconds,
        "rows_per_second": rows / seconds if seconds > 0 else float("nan"),
    }
