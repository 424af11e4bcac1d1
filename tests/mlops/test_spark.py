"""Anonymisation on real Spark `local[2]`: `mlflow.pyfunc.spark_udf` and `--engine spark`.

A ckd encoder (numeric and categorical columns) anonymises a small table: every row comes back
once, with the model's columns and training categories, and fresh randomness per row (the same
record repeated across partitions never comes back twice the same). Bad input exits 2 naming
the column and the input row, never a value, and writes nothing.
"""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from pyspark.sql import functions as F  # noqa: E402

from anomigan import cli  # noqa: E402
from anomigan.data import load_dataset  # noqa: E402

MODEL = "models:/anomigan-encoder-ckd@champion"
MARKER = "987654.321"
COPIES = 4


@pytest.fixture(scope="module")
def spark():
    from anomigan.mlops.spark import spark_session

    session = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    """Complete ckd records, each repeated COPIES times (about 630 rows)."""
    complete = load_dataset("ckd").features.dropna()
    return pd.concat([complete] * COPIES, ignore_index=True)


def _codec():
    return mlflow.pyfunc.load_model(MODEL).unwrap_python_model().codec


def _check_records(out: pd.DataFrame, n: int) -> None:
    codec = _codec()
    assert len(out) == n
    assert list(out.columns) == codec.columns
    for spec in codec.specs:
        if spec.kind == "categorical":
            assert set(out[spec.name]) <= set(spec.vocabulary), spec.name
        else:
            assert out[spec.name].between(spec.min - 1e-9, spec.max + 1e-9).all(), spec.name


def test_spark_udf_returns_the_anonymised_record_as_a_struct(ckd_encoder, spark, records):
    from anomigan.mlops.spark import result_type

    struct = result_type(MODEL)
    assert [f.name for f in struct.fields] == list(records.columns)
    anonymise = mlflow.pyfunc.spark_udf(spark, MODEL, result_type=struct, env_manager="local")
    frame = spark.createDataFrame(records.reset_index(names="row_id")).repartition(4)
    columns = [c for c in records.columns]
    out = frame.select("row_id", anonymise(F.struct(*columns)).alias("anon")).select(
        "row_id", "anon.*"
    )
    assert [f.name for f in out.schema.fields] == ["row_id", *columns]
    local = out.toPandas()
    assert sorted(local.pop("row_id")) == list(range(len(records)))  # none lost or repeated
    _check_records(local, len(records))


def _csv(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "records.csv"
    frame.to_csv(path, index=False)
    return path


def test_engine_spark_writes_every_row_once_with_fresh_randomness(
    ckd_encoder, spark, records, tmp_path
):
    src, dst = _csv(tmp_path, records), tmp_path / "anonymised.parquet"
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")  # several partitions
    try:
        args = ["--input", str(src), "--output", str(dst), "--chunk-size", "50"]
        assert cli.main(["anonymize", "--engine", "spark", "--model", MODEL, *args]) == 0
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    out = pd.read_parquet(dst)
    _check_records(out, len(records))
    # each record appears COPIES times in different partitions; no two releases are the same
    numeric = [s.name for s in _codec().specs if s.kind == "numeric"]
    assert not out.duplicated(subset=numeric).any()
    assert not (out[numeric].to_numpy() == records[numeric].to_numpy()).all(axis=1).any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anonymised.parquet", "records.csv"]
    # Parquet in as well; an existing output is replaced
    again = tmp_path / "again.parquet"
    args = ["--input", str(dst), "--output", str(again)]
    assert cli.main(["anonymize", "--engine", "spark", "--model", MODEL, *args]) == 0
    assert cli.main(["anonymize", "--engine", "spark", "--model", MODEL, *args]) == 0
    _check_records(pd.read_parquet(again), len(records))


def test_seed_makes_the_spark_job_reproducible(ckd_encoder, spark, records, tmp_path):
    src = _csv(tmp_path, records.iloc[:100])
    outs = [tmp_path / f"out{i}.parquet" for i in range(3)]
    for out, seed in zip(outs, ("5", "5", "6"), strict=True):
        args = ["--input", str(src), "--output", str(out), "--seed", seed]
        assert cli.main(["anonymize", "--engine", "spark", "--model", MODEL, *args]) == 0
    first, second, other = (pd.read_parquet(p) for p in outs)
    pd.testing.assert_frame_equal(first, second)
    assert not first.equals(other)


def _bad(records: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    bad = records.astype({column: "object"})
    bad.loc[row - 1, column] = value  # data row `row`, counted from 1 after the header
    return bad


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("bgr", f"abc{MARKER}", "column 'bgr' is numeric but has non-numeric values in rows [501]"),
        ("hemo", None, "column 'hemo' has missing (null or empty) values in rows [501]"),
        ("rbc", f"x{MARKER}", "column 'rbc' has categories not seen in training in rows [501]"),
    ],
)
def test_bad_row_exits_2_names_row_and_column_writes_nothing(
    ckd_encoder, spark, records, tmp_path, capsys, column, value, expected
):
    src = _csv(tmp_path, _bad(records, 501, column, value))
    dst = tmp_path / "anonymised.parquet"
    dst.mkdir()
    (dst / "previous").write_text("previous result")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")  # the bad row is not in the first
    try:
        args = ["--input", str(src), "--output", str(dst), "--chunk-size", "50"]
        assert cli.main(["anonymize", "--engine", "spark", "--model", MODEL, *args]) == 2
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    err = capsys.readouterr().err
    assert expected in err, err
    assert MARKER not in err
    assert (dst / "previous").read_text() == "previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anonymised.parquet", "records.csv"]


def test_unusable_inputs_exit_2(ckd_encoder, spark, records, tmp_path, capsys):
    dst = tmp_path / "out.parquet"

    def run(src) -> str:
        args = ["--input", str(src), "--output", str(dst)]
        assert cli.main(["anonymize", "--engine", "spark", "--model", MODEL, *args]) == 2
        assert not dst.exists()
        return capsys.readouterr().err

    lines = records.iloc[:40].to_csv(index=False).splitlines()
    lines[30] += f",{MARKER}"  # data row 30 has an extra field
    malformed = tmp_path / "malformed.csv"
    malformed.write_text("\n".join(lines) + "\n")
    err = run(malformed)
    assert "malformed CSV in rows [30]" in err and MARKER not in err
    missing = tmp_path / "missing.csv"
    records.drop(columns=["age"]).iloc[:5].to_csv(missing, index=False)
    assert "missing columns ['age']" in run(missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "file is empty" in run(empty)
    header = tmp_path / "header.csv"
    header.write_text(",".join(records.columns) + "\n")
    assert "no data rows" in run(header)
    assert "input not found" in run(tmp_path / "nope.csv")
    args = ["--input", str(missing), "--output", str(tmp_path / "out.csv")]
    assert cli.main(["anonymize", "--engine", "spark", "--model", MODEL, *args]) == 2
    assert "writes a Parquet folder" in capsys.readouterr().err


def test_local_workers_run_the_driver_interpreter_without_the_venv_on_path(
    ckd_encoder, records, tmp_path
):
    """PySpark starts workers with `$PYSPARK_PYTHON` or the first `python3` on PATH; a job
    run from a venv that is not on PATH must still find pandas and anomigan there."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src, dst = _csv(tmp_path, records.head(50)), tmp_path / "anonymised.parquet"
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_PYTHON"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    command = [sys.executable, cli.__file__, "anonymize", "--engine", "spark"]
    command += ["--model", MODEL, "--input", str(src), "--output", str(dst)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_records(pd.read_parquet(dst), 50)
