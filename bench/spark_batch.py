"""Spark batch speed: `anomigan anonymize --engine spark` on local[2] against the local engine.

The same generated 1,000,000-row breast-shaped file of synthetic records as
`bench/anonymize_file.py` (its generator, copula per class by default) goes through the CLI
twice in fresh child processes: the single-process path (CSV out) and `--engine spark
--spark-master local[2]` (Parquet out); rows/s are the commands' own (start-up excluded).
Then `mlflow.pyfunc.spark_udf` anonymises the file with a row id carried beside the struct, and
the script checks that every id comes back exactly once (no row lost or duplicated).

    .venv/bin/python bench/spark_batch.py [--rows 1000000] [--model models:/...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _store import store_with_encoder  # noqa: E402
from anonymize_file import generate, run_cli, sampler  # noqa: E402


def udf_check(model: str, src, rows: int, master: str) -> tuple[float, int, int]:
    """spark_udf over the file with a row id beside it: (rows/s, rows out, distinct ids)."""
    import mlflow
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StructField, StructType

    from anomigan.mlops.spark import result_type, spark_session

    spark = spark_session(master)
    codec = mlflow.pyfunc.load_model(model).unwrap_python_model().codec
    schema = StructType([StructField(c, DoubleType()) for c in codec.columns])
    frame = spark.read.schema(schema).option("header", True).csv(str(src))
    frame = frame.withColumn("row_id", F.monotonically_increasing_id())
    anonymise = mlflow.pyfunc.spark_udf(spark, model, result_type=result_type(model))
    out = frame.select("row_id", anonymise(F.struct(*codec.columns)).alias("anon"))
    start = time.perf_counter()
    counts = out.agg(
        F.count("*").alias("n"),
        F.countDistinct("row_id").alias("ids"),
        F.sum(F.col("anon")[codec.columns[0]]).alias("touch"),  # forces the struct
    ).collect()[0]
    seconds = time.perf_counter() - start
    spark.stop()
    return rows / seconds, counts["n"], counts["ids"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/anomigan-encoder-breast@champion")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--chunk-size", type=int, default=10_000, help="Spark's Arrow batch")
    args = parser.parse_args()

    import mlflow

    work, _ = store_with_encoder(args.model, args.tracking_uri)
    codec = mlflow.pyfunc.load_model(args.model).unwrap_python_model().codec
    src = work / "records.csv"
    draw = sampler(codec, "data", "breast")
    generate(codec, draw, src, args.rows, digits=True)
    print(f"generated {args.rows:,} synthetic rows ({src.stat().st_size / 1e6:.0f} MB)")
    try:
        local = run_cli(args.model, src, work / "out.csv", 50_000, [])
        assert local["rows"] == args.rows
        print(
            f"local engine: {local['rows_per_second']:,.0f} rows/s ({local['wall_s']:.1f} s wall)"
        )
        extra = ["--engine", "spark", "--spark-master", args.master]
        spark = run_cli(args.model, src, work / "out.parquet", args.chunk_size, extra)
        import pyarrow.parquet as pq

        written = pq.ParquetDataset(str(work / "out.parquet")).read().num_rows
        assert spark["rows"] == written == args.rows, (spark["rows"], written)
        print(
            f"spark engine on {args.master}: {spark['rows_per_second']:,.0f} rows/s "
            f"({spark['wall_s']:.1f} s wall), {written:,} rows written; "
            f"{spark['rows_per_second'] / local['rows_per_second']:.2f}x the local engine"
        )
        speed, n, ids = udf_check(args.model, src, args.rows, args.master)
        status = "ok" if n == ids == args.rows else "ROWS LOST OR DUPLICATED"
        print(f"spark_udf on {args.master}: {speed:,.0f} rows/s; {n:,} rows, {ids:,} ids: {status}")
        if status != "ok":
            raise SystemExit(1)
    finally:
        src.unlink(missing_ok=True)
        (work / "out.csv").unlink(missing_ok=True)
        shutil.rmtree(work / "out.parquet", ignore_errors=True)


if __name__ == "__main__":
    main()
