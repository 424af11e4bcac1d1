"""Batch speed and memory: `anomigan anonymize` on a generated 1,000,000-row breast-shaped CSV.

The file holds synthetic records, never patient rows. By default (`--shape data`) each class
of the training split gets a Gaussian copula in model space: per column, 101 quantiles of that
class's values (its marginal), and the correlation of the columns' normal scores. Only these
aggregates are used; no row is copied. Records are written with 4 significant digits as in the
Wisconsin file (about 210 bytes a row, like the real one). The copula keeps the skewed marginals
of the real data, so the share of records near the target's decision boundary, which sets the
prediction guard's re-draws, is close to real records' (the script prints both).
`--shape gaussian` draws one multivariate Gaussian over all classes (many records between the
classes: a pessimistic case for the guard), and `--shape uniform` uniform points of model space
at full precision (about 580 bytes a row).
The anonymiser runs as the real CLI in a child process; the script prints its rows/s and the
child's peak RSS, for a small file and the large one (flat memory: the two peaks should be
about the same). Goal: >= 50,000 rows/s on 2 cores.

    .venv/bin/python bench/anonymize_file.py [--rows 1000000] [--model models:/...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _store import store_with_encoder  # noqa: E402


def _copula(x: np.ndarray):
    """(quantiles, correlation) of a per-column Gaussian copula of x: aggregates, not rows."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    scores = ndtri((rankdata(x, axis=0) - 0.5) / len(x))
    corr = np.nan_to_num(np.corrcoef(scores, rowvar=False))  # constant columns: no correlation
    np.fill_diagonal(corr, 1.0)
    return np.quantile(x, LEVELS, axis=0), corr


LEVELS = np.linspace(0.0, 1.0, 101)


def sampler(codec, shape: str, dataset: str):
    """`draw(rng, n)` -> n synthetic records in model space, of the requested shape."""
    if shape == "uniform":
        return lambda rng, n: rng.uniform(0, 1, size=(n, codec.n_outputs))
    from anomigan.mlops.jobs import prepare

    prep = prepare(dataset, None)
    if prep.codec.columns != codec.columns:
        raise SystemExit(f"--model was not trained on {dataset!r}: use --shape uniform")
    if shape == "gaussian":
        mean, cov = prep.x_train.mean(axis=0), np.cov(prep.x_train, rowvar=False)
        return lambda rng, n: np.clip(rng.multivariate_normal(mean, cov, size=n), 0.0, 1.0)
    from scipy.special import ndtr

    labels = np.asarray(prep.train.labels)
    classes, counts = np.unique(labels, return_counts=True)
    fits = [_copula(prep.x_train[labels == c]) for c in classes]

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        parts, sizes = [], rng.multinomial(n, counts / counts.sum())
        for (quantiles, corr), k in zip(fits, sizes, strict=True):
            u = ndtr(rng.multivariate_normal(np.zeros(len(corr)), corr, size=k, method="eigh"))
            columns = [np.interp(u[:, j], LEVELS, col) for j, col in enumerate(quantiles.T)]
            parts.append(np.column_stack(columns))
        return np.concatenate(parts)[rng.permutation(n)]

    return draw


def first_draw_changes(anonymizer, x: np.ndarray) -> float:
    """Share of records whose first draw the target classifies differently: the share the
    prediction guard re-draws, which sets its cost."""
    import dataclasses

    x = x.astype(np.float32)
    out = dataclasses.replace(anonymizer, max_resample=0).anonymize(x, seed=0)
    return float(np.mean(anonymizer.predict(out) != anonymizer.predict(x)))


def four_digits(frame):
    """Floating columns rounded to 4 significant digits, as the source data are written."""
    for name in frame.columns[frame.dtypes == "float64"]:
        v = frame[name].to_numpy()
        scale = 10.0 ** (3 - np.floor(np.log10(np.where(v == 0, 1.0, np.abs(v)))))
        frame[name] = np.round(v * scale) / scale
    return frame


def generate(codec, draw, path: Path, rows: int, digits: bool, chunk: int = 100_000) -> None:
    """Write `rows` synthetic records of the codec's columns."""
    from anomigan.mlops.batch import csv_bytes

    rng = np.random.default_rng(0)
    with path.open("wb") as out:
        for start in range(0, rows, chunk):
            records = codec.decode(draw(rng, min(chunk, rows - start)).astype("float32"))
            out.write(csv_bytes(four_digits(records) if digits else records, header=start == 0))


def run_cli(model: str, src: Path, dst: Path, chunk_size: int, extra: list[str]) -> dict:
    """Run the CLI in a fresh child; its own rows/s, wall time and the child's peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cmd = [str(Path(sys.executable).parent / "anomigan"), "anonymize", "--model", model]
    cmd += ["--input", str(src), "--output", str(dst), "--chunk-size", str(chunk_size), *extra]
    start = time.perf_counter()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    return {
        "rows": int(out["rows"]),
        "rows_per_second": float(out["rows_per_second"]),
        "wall_s": wall,
        # RUSAGE_CHILDREN keeps the largest child so far: valid when runs grow in size
        "peak_rss_mb": max(peak, before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/anomigan-encoder-breast@champion")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--shape", choices=("data", "gaussian", "uniform"), default="data")
    parser.add_argument("--dataset", default="breast", help="data set of --shape data")
    parser.add_argument(
        "--max-resample", type=int, default=None, help="passed to the CLI (default: the model's)"
    )
    parser.add_argument("--workers", type=int, default=None, help="passed to the CLI (2)")
    args = parser.parse_args()

    import mlflow

    work, uri = store_with_encoder(args.model, args.tracking_uri)
    model = mlflow.pyfunc.load_model(args.model).unwrap_python_model()
    codec = model.codec
    draw = sampler(codec, args.shape, args.dataset)
    changed = first_draw_changes(model.anonymizer, draw(np.random.default_rng(1), 20_000))
    line = f"target class changed at the first draw: {changed:.1%} of synthetic records"
    if args.shape != "uniform":
        from anomigan.mlops.jobs import prepare

        real = prepare(args.dataset, None).x_train
        real = np.tile(real, (-(-20_000 // len(real)), 1))  # fresh randomness per copy
        line += f", {first_draw_changes(model.anonymizer, real):.1%} of real training records"
    print(line)

    try:
        for rows in (args.small_rows, args.rows):
            src, dst = work / f"records{rows}.csv", work / f"anonymised{rows}.csv"
            t = time.perf_counter()
            generate(codec, draw, src, rows, digits=args.shape != "uniform")
            size, took = src.stat().st_size / 1e6, time.perf_counter() - t
            print(
                f"generated {rows:,} synthetic rows ({args.shape}, {size:.0f} MB) in {took:.1f} s"
            )
            extra = [] if args.max_resample is None else ["--max-resample", str(args.max_resample)]
            extra += [] if args.workers is None else ["--workers", str(args.workers)]
            r = run_cli(args.model, src, dst, args.chunk_size, extra)
            assert r["rows"] == rows
            print(
                f"anonymised {rows:,} rows: {r['rows_per_second']:,.0f} rows/s inside the command "
                f"({rows / r['wall_s']:,.0f} rows/s including start-up, {r['wall_s']:.1f} s); "
                f"peak RSS {r['peak_rss_mb']:.0f} MB (goal >= 50,000 rows/s)"
            )
            src.unlink()
            dst.unlink()
    finally:
        for path in work.glob("*.csv"):
            path.unlink()


if __name__ == "__main__":
    main()
