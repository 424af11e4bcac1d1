"""Batch anonymisation of CSV files with a registered encoder (`anomigan anonymize`).

Files can be larger than memory, so the input is streamed in chunks; each chunk goes through
the same validation and pyfunc (`EncoderModel.predict_records`) as the HTTP endpoint. Output
goes to a temporary file next to the destination and is moved into place only when every row
has been anonymised: a failed run leaves no partial file and an existing output untouched.
Errors name the file, the data row (counted from 1 after the header) and the column, never a
value.

Chunks are anonymised by `workers` threads while the main thread reads the next chunk and
writes finished ones in file order. TensorFlow, the CSV parser and pyarrow's writer release
the GIL, so parsing and writing overlap with the encoder, and two threads keep both cores of a
small machine busier than one (`bench/anonymize_file.py --workers 1` measures the difference).
At most `workers + 1` chunks are in memory at once, and the output does not depend
on `workers` (each chunk's seed is drawn in file order).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
from mlflow.exceptions import MlflowException
from tqdm.auto import tqdm

from anomigan.data.codec import SchemaError
from anomigan.mlops.serving import EncoderModel, InvalidRecords, check_seed

DEFAULT_CHUNK_SIZE = 50_000
DEFAULT_WORKERS = 2


def load_encoder_model(model_uri: str):
    """The `EncoderModel` behind a registered pyfunc URI, with a clear error if it is not one."""
    try:
        python_model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    except (MlflowException, OSError) as exc:
        raise ValueError(f"cannot load model {model_uri!r}: {type(exc).__name__}") from None
    if not isinstance(python_model, EncoderModel):
        raise ValueError(f"model {model_uri!r} is not an AnomiGAN encoder")
    return python_model


def _chunks(handle, path: Path, columns: list[str], categorical: set[str], chunk_size: int):
    """Yield chunks whose index is the 1-based data row number, with value-free parse errors."""
    try:
        reader = pd.read_csv(
            handle,
            chunksize=chunk_size,
            dtype={c: "str" for c in columns if c in categorical},
            skipinitialspace=True,
        )
        start = 1
        for chunk in reader:
            if len(chunk) == 0:
                continue
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{path}: file is empty") from None
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f" at line {line.group(1)}" if line else ""
        raise SchemaError(f"{path}: malformed CSV{where} (wrong number of fields?)") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not a UTF-8 text file") from None
    except ValueError:  # e.g. a forced str column pandas cannot build
        raise SchemaError(f"{path}: the file could not be parsed as CSV") from None


def csv_bytes(frame: pd.DataFrame, header: bool) -> bytes:
    """A chunk as CSV: pandas writes the header, pyarrow the body (much faster than pandas)."""
    out = io.BytesIO()
    if header:
        out.write(frame.iloc[:0].to_csv(index=False).encode("utf-8"))
    table = pa.Table.from_pandas(
        frame.astype({c: "str" for c, t in frame.dtypes.items() if t == "category"}),
        preserve_index=False,
    )
    pcsv.write_csv(table, out, write_options=pcsv.WriteOptions(include_header=False))
    return out.getvalue()


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator:
    """A binary temp file in `path`'s folder, renamed onto `path` only if the block succeeds."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def anonymize_csv(
    model_uri: str,
    input_path: str | Path,
    output_path: str | Path,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    seed: int | None = None,
    allow_missing: bool = False,
    progress: bool = True,
    max_resample: int | None = None,
    workers: int = DEFAULT_WORKERS,
) -> dict:
    """Anonymise every record of a CSV file into `output_path`; returns row count and speed.

    With `seed` the whole file is reproducible (each chunk gets a seed drawn from it); keep it
    secret, since anyone holding it and the model can re-run candidate records and link them.
    `max_resample` overrides the model's prediction guard (re-draws per record; 0 turns it off).
    `workers` threads anonymise chunks concurrently; the output is the same for any number.
    """
    src, dst = Path(input_path), Path(output_path)
    if chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {chunk_size}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if not src.is_file():
        raise FileNotFoundError(f"{src}: input file not found")
    if not dst.parent.is_dir():
        raise FileNotFoundError(f"{dst.parent}: output folder not found")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError("--output must differ from --input")
    check_seed(seed)
    if max_resample is not None and max_resample < 0:
        raise ValueError(f"--max-resample must be 0 or more, got {max_resample}")
    model = load_encoder_model(model_uri)
    if max_resample is not None:
        model.anonymizer = dataclasses.replace(model.anonymizer, max_resample=max_resample)
    codec = model.codec
    categorical = {s.name for s in codec.specs if s.kind == "categorical"}
    rng = np.random.default_rng(seed) if seed is not None else None

    def anonymise(chunk: pd.DataFrame, chunk_seed: int | None, header: bool) -> bytes:
        try:
            result = model.predict_records(chunk, seed=chunk_seed, allow_missing=allow_missing)
        except (InvalidRecords, SchemaError) as exc:
            raise SchemaError(
                f"{src}: {exc} (rows are data rows counted from 1 after the header)"
            ) from None
        return csv_bytes(result, header)

    start, n_rows = time.perf_counter(), 0
    size = src.stat().st_size
    with (
        open(src, "rb") as handle,
        atomic_output(dst) as out,
        ThreadPoolExecutor(workers, thread_name_prefix="anonymise") as pool,
        tqdm(total=size, unit="B", unit_scale=True, desc="anonymise", disable=not progress) as bar,
    ):
        pending: deque[Future] = deque()

        def write_oldest() -> None:
            out.write(pending.popleft().result())  # re-raises the chunk's error, in file order
            bar.update(min(handle.tell(), size) - bar.n)

        try:
            chunks = _chunks(handle, src, codec.columns, categorical, chunk_size)
            for chunk in _read_ahead_errors(chunks, pending, write_oldest):
                chunk_seed = None if rng is None else int(rng.integers(0, 2**62))
                pending.append(pool.submit(anonymise, chunk, chunk_seed, n_rows == 0))
                n_rows += len(chunk)
                while len(pending) > workers:
                    write_oldest()
            while pending:
                write_oldest()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        if n_rows == 0:
            raise SchemaError(f"{src}: the file has a header but no data rows")
    seconds = time.perf_counter() - start
    return {
        "rows": n_rows,
        "output": str(dst),
        "seconds": seconds,
        "rows_per_second": n_rows / seconds if seconds > 0 else float("nan"),
    }


def _read_ahead_errors(
    chunks: Iterator[pd.DataFrame], pending: deque, write_oldest: Callable[[], None]
) -> Iterator[pd.DataFrame]:
    """`chunks`, but a read error is raised only after the chunks read before it are written:
    the reader runs ahead of the workers, and the first bad row in file order is reported."""
    try:
        yield from chunks
    except SchemaError:
        while pending:
            write_oldest()
        raise
