"""`anomigan anonymize`: streamed CSV anonymisation with a registered encoder.

A good file comes back complete and changed; a bad row anywhere stops the run with exit 2 and a
message naming the row and the column (never the value), leaving no output file behind and an
existing output untouched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomigan import cli
from anomigan.data import load_dataset

MODEL = "models:/anomigan-encoder-breast@champion"


MARKER = "987654.321"


@pytest.fixture
def records_csv(tmp_path) -> tuple[Path, pd.DataFrame]:
    """1,200 breast records (the data set repeated), enough for several 500-row chunks."""
    features = load_dataset("breast").features
    frame = pd.concat([features, features, features]).iloc[:1200].reset_index(drop=True)
    path = tmp_path / "records.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _run(*args: str) -> int:
    return cli.main(["anonymize", "--model", MODEL, *args])


def test_happy_path_rows_columns_types_and_changed_values(breast_encoder, records_csv, tmp_path):
    src, frame = records_csv
    dst = tmp_path / "anonymised.csv"
    assert _run("--input", str(src), "--output", str(dst), "--chunk-size", "500") == 0
    out = pd.read_csv(dst)
    assert len(out) == len(frame)
    assert list(out.columns) == list(frame.columns)
    assert (out.dtypes == frame.dtypes).all()
    assert not (out.to_numpy() == frame.to_numpy()).all(axis=1).any()  # every record changed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_seed_makes_the_file_reproducible(breast_encoder, records_csv, tmp_path):
    src, _ = records_csv
    outs = [tmp_path / f"out{i}.csv" for i in range(3)]
    for out, seed in zip(outs, ("5", "5", "6"), strict=True):
        assert _run("--input", str(src), "--output", str(out), "--seed", seed) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() != outs[2].read_bytes()


def test_bad_row_in_the_middle_exits_2_names_row_and_column(breast_encoder, records_csv, cli_env):
    src, frame = records_csv
    bad = frame.astype({"mean texture": "object"})
    bad.loc[699, "mean texture"] = f"abc{MARKER}"  # data row 700
    bad.to_csv(src, index=False)
    dst = src.parent / "anonymised.csv"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "anomigan"),
            "anonymize",
            "--model",
            MODEL,
            "--input",
            str(src),
            "--output",
            str(dst),
            "--chunk-size",
            "500",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "column 'mean texture'" in done.stderr and "rows [700]" in done.stderr
    assert MARKER not in done.stderr + done.stdout
    assert not dst.exists()
    assert sorted(p.name for p in src.parent.iterdir()) == ["records.csv"]


def test_failed_run_leaves_an_existing_output_untouched(
    breast_encoder, records_csv, tmp_path, capsys
):
    src, frame = records_csv
    dst = tmp_path / "anonymised.csv"
    dst.write_text("previous result\n")
    bad = frame.copy()
    bad.loc[1100, "worst area"] = np.nan  # an empty cell in the last chunk
    bad.to_csv(src, index=False)
    assert _run("--input", str(src), "--output", str(dst), "--chunk-size", "500") == 2
    err = capsys.readouterr().err
    assert "column 'worst area' has missing (null or empty) values in rows [1101]" in err
    assert dst.read_text() == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anonymised.csv", "records.csv"]
    # imputation is an explicit choice
    assert _run("--input", str(src), "--output", str(dst), "--allow-missing") == 0
    assert len(pd.read_csv(dst)) == len(frame)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "file is empty"),
        ("mean radius,mean texture\n1.0,2.0\n", "missing columns"),
        ("HEADER\n", "no data rows"),
    ],
)
def test_unusable_files_exit_2(breast_encoder, tmp_path, capsys, content, expected):
    src = tmp_path / "in.csv"
    src.write_text(content)
    assert _run("--input", str(src), "--output", str(tmp_path / "out.csv")) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_missing_input_and_bad_model_exit_2(breast_encoder, tmp_path, capsys):
    assert _run("--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.csv")) == 2
    assert "input file not found" in capsys.readouterr().err
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n")
    code = cli.main(
        ["anonymize", "--model", "models:/anomigan-target-breast@champion"]
        + ["--input", str(src), "--output", str(tmp_path / "o.csv")]
    )
    assert code == 2
    assert "is not an AnomiGAN encoder" in capsys.readouterr().err


def test_max_resample_overrides_the_guard(breast_encoder, records_csv, tmp_path, capsys):
    """With one seed the first draw is the same, and the guard only re-draws records whose
    prediction changed: agreement with it is at least agreement without it."""
    from anomigan.mlops.batch import load_encoder_model

    src, frame = records_csv
    outs = {n: tmp_path / f"out{n}.csv" for n in ("0", "10")}
    for n, out in outs.items():
        assert (
            _run("--input", str(src), "--output", str(out), "--seed", "3", "--max-resample", n) == 0
        )
    model = load_encoder_model(MODEL)
    predict, codec = model.anonymizer.predict, model.codec
    wanted = predict(codec.encode(frame))
    agree = {
        n: float((predict(codec.encode(pd.read_csv(p))) == wanted).mean()) for n, p in outs.items()
    }
    assert agree["0"] < 1.0 and agree["10"] > agree["0"]  # this briefly trained encoder flips
    assert (
        _run("--input", str(src), "--output", str(tmp_path / "x.csv"), "--max-resample", "-1") == 2
    )
    assert "--max-resample must be 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_workers_do_not_change_the_output(breast_encoder, records_csv, tmp_path, capsys):
    """Chunks are anonymised by worker threads and written in file order; each chunk's seed is
    drawn in that order, so any number of workers writes the same file."""
    src, _ = records_csv
    outs = {w: tmp_path / f"out{w}.csv" for w in ("1", "3")}
    for w, out in outs.items():
        args = ["--seed", "5", "--chunk-size", "100", "--workers", w]
        assert _run("--input", str(src), "--output", str(out), *args) == 0
    assert outs["1"].read_bytes() == outs["3"].read_bytes()
    assert _run("--input", str(src), "--output", str(tmp_path / "x.csv"), "--workers", "0") == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_first_bad_row_in_file_order_is_reported_with_workers(
    breast_encoder, records_csv, tmp_path, capsys
):
    """The reader runs ahead of the workers: a malformed line it meets later in the file must
    not hide the bad value of an earlier chunk still being anonymised."""
    src, frame = records_csv
    bad = frame.astype({"mean texture": "object"})
    bad.loc[249, "mean texture"] = f"abc{MARKER}"  # data row 250, chunk 3 of 100 rows
    lines = bad.to_csv(index=False).splitlines()
    lines[450] += ",1"  # data row 450 (chunk 5) gets an extra field
    src.write_text("\n".join(lines) + "\n")
    dst = tmp_path / "out.csv"
    for workers in ("1", "3"):
        args = ["--chunk-size", "100", "--workers", workers]
        assert _run("--input", str(src), "--output", str(dst), *args) == 2
        err = capsys.readouterr().err
        assert "column 'mean texture'" in err and "rows [250]" in err, err
        assert MARKER not in err
        assert not dst.exists()
    src.write_text("\n".join(lines[:250] + lines[251:]) + "\n")  # only the malformed line left
    assert _run("--input", str(src), "--output", str(dst), "--chunk-size", "100") == 2
    assert "malformed CSV at line" in capsys.readouterr().err
