"""Invertible record preprocessing: raw tabular records <-> model space ``[0, 1]^d``.

The GAN works on vectors in ``[0, 1]``; people (and the model server) work on raw records.
``RecordCodec`` is fitted on the training split only, so test data never leaks into the
scaling, and it can be saved as JSON next to the model so serving decodes exactly as training.

Numeric columns are min-max scaled with the training range (clipped outside it), missing
values take the training median. Categorical columns with two levels use one model column
(0 = first level, 1 = second level in sorted order), more levels a one-hot block; missing
values take the training mode. Decoding always yields complete, valid records.

Error messages name columns and rows, never cell values (the data are patient records).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ColumnSpec", "RecordCodec", "SchemaError"]

FORMAT_VERSION = 1


class SchemaError(ValueError):
    """Input records do not match the codec's schema. Message names column(s)/row(s),
    never values."""


@dataclass
class ColumnSpec:
    """What the codec learned about one raw column (all JSON-serialisable)."""

    name: str
    kind: str  # "numeric" or "categorical"
    dtype: str  # raw dtype string of the fitted frame, restored by decode
    integer: bool = False  # numeric: all training values integral -> decode rounds
    decimals: int = -1  # numeric: fewest decimals (<= 8) that write every training value; -1: more
    min: float = 0.0
    max: float = 0.0
    median: float = 0.0
    vocabulary: list[str] = field(default_factory=list)  # categorical, sorted
    mode: str = ""  # categorical: most frequent training level (imputation)

    @property
    def width(self) -> int:
        """Number of model-space columns this raw column occupies."""
        if self.kind == "numeric" or len(self.vocabulary) <= 2:
            return 1
        return len(self.vocabulary)


def _rows(index: pd.Index, mask: np.ndarray, limit: int = 10) -> str:
    """Index labels of flagged rows, truncated, for messages."""
    labels = [str(v) for v in index[mask][:limit]]
    more = int(mask.sum()) - len(labels)
    return "[" + ", ".join(labels) + "]" + (f" (+{more} more)" if more > 0 else "")


def _decimals(values: np.ndarray, most: int = 8) -> int:
    """Fewest decimals that write every value exactly (e.g. 2 for 17.99), or -1 beyond `most`.

    Decoding rounds to it, so released records look like the source data (17.99, not
    17.990000915527344: the encoder computes in float32, digits beyond the data's are noise).
    """
    for k in range(most + 1):
        if np.allclose(np.round(values, k), values, rtol=1e-12, atol=0.0):
            return k
    return -1


def _is_numeric_dtype(dtype: Any) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


class RecordCodec:
    """sklearn-style encoder/decoder between raw records and ``[0, 1]`` model vectors."""

    def __init__(self) -> None:
        self.specs: list[ColumnSpec] = []

    # ------------------------------------------------------------------ fitting / metadata

    def fit(self, features: pd.DataFrame) -> RecordCodec:
        """Learn column kinds, ranges, medians and vocabularies from the training frame."""
        if not isinstance(features, pd.DataFrame):
            raise SchemaError("fit expects a pandas DataFrame")
        if features.shape[0] == 0 or features.shape[1] == 0:
            raise SchemaError("cannot fit on an empty frame")
        names = list(features.columns)
        if any(not isinstance(c, str) for c in names):
            raise SchemaError("column names must be strings")
        dupes = sorted({c for c in names if names.count(c) > 1})
        if dupes:
            raise SchemaError(f"duplicate column names: {dupes}")
        specs = []
        for name in names:
            col = features[name]
            if col.isna().all():
                raise SchemaError(f"column '{name}' is entirely missing; cannot fit")
            dtype = str(col.dtype)
            if _is_numeric_dtype(col.dtype):
                values = col.dropna().to_numpy(dtype="float64")
                if not np.isfinite(values).all():
                    raise SchemaError(f"column '{name}' has infinite values; cannot fit")
                specs.append(
                    ColumnSpec(
                        name=name,
                        kind="numeric",
                        dtype=dtype,
                        integer=bool(np.all(values == np.round(values))),
                        decimals=_decimals(values),
                        min=float(values.min()),
                        max=float(values.max()),
                        median=float(np.median(values)),
                    )
                )
            else:
                values = col.dropna().astype(str)
                counts = values.value_counts()
                vocab = sorted(counts.index.tolist())
                top = int(counts.max())
                mode = min(v for v in vocab if counts[v] == top)
                specs.append(
                    ColumnSpec(
                        name=name, kind="categorical", dtype=dtype, vocabulary=vocab, mode=mode
                    )
                )
        self.specs = specs
        return self

    def _check_fitted(self) -> None:
        if not self.specs:
            raise RuntimeError("RecordCodec is not fitted; call fit() or load() first")

    @property
    def columns(self) -> list[str]:
        """Raw column names in fit order."""
        self._check_fitted()
        return [s.name for s in self.specs]

    @property
    def n_outputs(self) -> int:
        """Width of the model space."""
        self._check_fitted()
        return sum(s.width for s in self.specs)

    def model_space_names(self) -> list[str]:
        """One label per model column (``"age"``, ``"rbc"``, ``"colour=red"``), for plots."""
        self._check_fitted()
        names: list[str] = []
        for s in self.specs:
            if s.width == 1:
                names.append(s.name)
            else:
                names.extend(f"{s.name}={v}" for v in s.vocabulary)
        return names

    def model_blocks(self) -> list[tuple[int, int, bool]]:
        """(first model column, width, discrete) per raw column: what a sampler in model space
        needs to keep categories valid (a one-hot block is one variable, a binary category a
        0/1 column)."""
        self._check_fitted()
        blocks, j = [], 0
        for s in self.specs:
            blocks.append((j, s.width, s.kind == "categorical"))
            j += s.width
        return blocks

    # ------------------------------------------------------------------ validation

    def check_columns(self, names) -> list[str]:
        """The given column names as strings, if they are exactly the codec's (any order);
        else SchemaError naming the missing and unexpected ones. Needs no rows, so a job can
        check a table's header before reading it."""
        self._check_fitted()
        expected = self.columns
        given = [str(c) for c in names]
        missing = [c for c in expected if c not in given]
        extra = [c for c in given if c not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if extra:
                parts.append(f"unexpected columns {extra}")
            raise SchemaError("; ".join(parts))
        if len(set(given)) != len(given):
            raise SchemaError("duplicate column names in records")
        return given

    def validate(self, features: pd.DataFrame) -> pd.DataFrame:
        """Check records against the schema; return them cleaned, in fit column order.

        Numeric columns come back as float64, categorical as object strings; NaN/None is
        kept (encode imputes it). Raises SchemaError naming columns/rows, never values.
        """
        self._check_fitted()
        if not isinstance(features, pd.DataFrame):
            raise SchemaError("records must be a pandas DataFrame")
        if len(features) == 0:
            raise SchemaError("no records (empty frame)")
        given = self.check_columns(features.columns)
        frame = features
        if given != list(features.columns):
            frame = features.copy()
            frame.columns = given
        # Fast path (one block, no per-column pandas calls): numeric columns that already hold
        # plain numpy numbers. A single-record request is dominated by per-column overhead.
        dtypes = dict(zip(given, frame.dtypes.tolist(), strict=True))
        fast = [
            s.name
            for s in self.specs
            if s.kind == "numeric"
            and isinstance(dtypes[s.name], np.dtype)
            and dtypes[s.name].kind in "iuf"
        ]
        if fast == given:
            block = frame.to_numpy(dtype="float64")
        elif fast:
            block = frame[fast].to_numpy(dtype="float64")
        else:
            block = np.empty((len(frame), 0))
        block_inf = np.isinf(block).any(axis=0)
        fast_pos = {name: k for k, name in enumerate(fast)}
        out: dict[str, pd.Series | np.ndarray] = {}
        for s in self.specs:
            if s.name in fast_pos:
                k = fast_pos[s.name]
                if block_inf[k]:
                    inf = np.isinf(block[:, k])
                    raise SchemaError(
                        f"column '{s.name}' has infinite values in rows {_rows(frame.index, inf)}"
                    )
                out[s.name] = block[:, k]
                continue
            col = frame[s.name]
            present = col.notna().to_numpy()
            if s.kind == "numeric":
                if pd.api.types.is_bool_dtype(col.dtype):
                    col = col.astype("float64")
                num = pd.to_numeric(col, errors="coerce").astype("float64")
                bad = present & num.isna().to_numpy()
                if bad.any():
                    raise SchemaError(
                        f"column '{s.name}' is numeric but has non-numeric values in rows "
                        f"{_rows(frame.index, bad)}"
                    )
                inf = np.isinf(num.to_numpy())
                if inf.any():
                    raise SchemaError(
                        f"column '{s.name}' has infinite values in rows {_rows(frame.index, inf)}"
                    )
                out[s.name] = num
            else:
                text = pd.Series(
                    [v if pd.isna(v) else str(v) for v in col],
                    index=frame.index,
                    dtype="object",
                )
                unknown = present & ~text.isin(s.vocabulary).to_numpy()
                if unknown.any():
                    raise SchemaError(
                        f"column '{s.name}' has categories not seen in training in rows "
                        f"{_rows(frame.index, unknown)}"
                    )
                out[s.name] = text
        if fast == self.columns:  # all plain numbers: one 2-D block, no per-column copies
            result = pd.DataFrame(block, columns=fast, index=frame.index, copy=False)
        else:
            result = pd.DataFrame(out, index=frame.index)
        if len(fast) == len(self.specs) and not np.isnan(block).any():
            return result  # complete numbers: no row can be entirely missing
        empty = result.isna().all(axis=1).to_numpy()
        if empty.any():
            raise SchemaError(f"records are entirely missing in rows {_rows(frame.index, empty)}")
        return result

    # ------------------------------------------------------------------ transform

    def encode(self, features: pd.DataFrame) -> np.ndarray:
        """Validate, impute and scale records to a float32 matrix in ``[0, 1]``."""
        clean = self.validate(features)
        n = len(clean)
        z = np.zeros((n, self.n_outputs), dtype="float64")
        num = [s for s in self.specs if s.kind == "numeric"]
        if num:  # all numeric columns at once
            names = [s.name for s in num]
            frame = clean if names == list(clean.columns) else clean[names]
            x = frame.to_numpy(dtype="float64")
            x = np.where(np.isnan(x), np.array([s.median for s in num]), x)
            lo, span = self._ranges(num)
            scaled = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.0)
            z[:, self._offsets(num)] = scaled
        j = 0
        for s in self.specs:
            if s.kind == "categorical":
                x = clean[s.name].fillna(s.mode).to_numpy(dtype=object)
                if s.width == 1:
                    if len(s.vocabulary) == 2:
                        z[:, j] = x == s.vocabulary[1]
                else:
                    lookup = {v: k for k, v in enumerate(s.vocabulary)}
                    codes = np.fromiter((lookup[v] for v in x), dtype=np.intp, count=n)
                    z[np.arange(n), j + codes] = 1.0
            j += s.width
        return np.clip(z, 0.0, 1.0).astype("float32")

    def decode(self, z: np.ndarray) -> pd.DataFrame:
        """Map model vectors back to complete, valid raw records with the fitted dtypes.

        Values are clipped to ``[0, 1]``, unscaled, rounded to the training data's decimals
        (integers for integer columns) and clipped to the training range; binary columns
        threshold at 0.5, one-hot blocks take the argmax.
        """
        self._check_fitted()
        z = np.asarray(z, dtype="float64")
        if z.ndim == 1:
            z = z.reshape(1, -1)
        if z.ndim != 2 or z.shape[1] != self.n_outputs:
            raise SchemaError(f"expected an array of shape (n, {self.n_outputs}), got {z.shape}")
        if not np.isfinite(z).all():
            raise SchemaError("model vectors contain NaN or infinite entries")
        z = np.clip(z, 0.0, 1.0)
        num = [s for s in self.specs if s.kind == "numeric"]
        if num:  # all numeric columns at once
            lo, span = self._ranges(num)
            x = z[:, self._offsets(num)] * span + lo
            decimals = np.array([0 if s.integer else s.decimals for s in num])
            if (decimals >= 0).any():  # round to the training data's precision
                scale = 10.0 ** np.maximum(decimals, 0)
                x = np.where(decimals >= 0, np.round(x * scale) / scale, x)
            x = np.clip(x, lo, lo + span)
            numbers = {s.name: x[:, k] for k, s in enumerate(num)}
        out: dict[str, pd.Series | np.ndarray] = {}
        j = 0
        for s in self.specs:
            block = z[:, j : j + s.width]
            if s.kind == "numeric":
                if s.dtype == "float64":
                    out[s.name] = numbers[s.name]
                elif s.dtype in ("int64", "int32", "float32"):
                    out[s.name] = numbers[s.name].astype(s.dtype)
                else:
                    out[s.name] = pd.Series(numbers[s.name]).astype(s.dtype)
            else:
                vocab = np.asarray(s.vocabulary, dtype=object)
                if len(vocab) == 1:
                    values = np.repeat(vocab, len(z))
                elif s.width == 1:
                    values = vocab[(block[:, 0] >= 0.5).astype(int)]
                else:
                    values = vocab[np.argmax(block, axis=1)]
                out[s.name] = self._categorical_series(values, s)
            j += s.width
        if num and all(isinstance(v, np.ndarray) and v.dtype == "float64" for v in out.values()):
            return pd.DataFrame(x, columns=list(out), copy=False)  # one block (all float64)
        return pd.DataFrame(out)

    def _ranges(self, specs: list[ColumnSpec]) -> tuple[np.ndarray, np.ndarray]:
        """Training minimum and span (max - min) of numeric columns, as vectors."""
        lo = np.array([s.min for s in specs], dtype="float64")
        return lo, np.array([s.max for s in specs], dtype="float64") - lo

    def _offsets(self, specs: list[ColumnSpec]) -> list[int]:
        """Model-space column of each given (numeric, width-1) spec."""
        starts, j = {}, 0
        for s in self.specs:
            starts[s.name] = j
            j += s.width
        return [starts[s.name] for s in specs]

    @staticmethod
    def _categorical_series(values: np.ndarray, s: ColumnSpec) -> pd.Series:
        if s.dtype == "category":
            return pd.Series(pd.Categorical(values, categories=s.vocabulary))
        try:
            return pd.Series(values, dtype=s.dtype)
        except (TypeError, ValueError):  # e.g. an object column of ints: strings are faithful
            return pd.Series(values, dtype="object")

    def fit_encode(self, features: pd.DataFrame) -> np.ndarray:
        """Convenience: ``fit(features).encode(features)``."""
        return self.fit(features).encode(features)

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict:
        """Plain-JSON description; ``from_dict`` rebuilds an identical codec."""
        self._check_fitted()
        return {
            "format": "anomigan.RecordCodec",
            "version": FORMAT_VERSION,
            "columns": [asdict(s) for s in self.specs],
        }

    @classmethod
    def from_dict(cls, d: dict) -> RecordCodec:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != "anomigan.RecordCodec" or d.get("version") != FORMAT_VERSION:
            raise SchemaError("not a RecordCodec description of a supported version")
        codec = cls()
        codec.specs = [ColumnSpec(**c) for c in d["columns"]]
        if not codec.specs:
            raise SchemaError("codec description has no columns")
        return codec

    def save(self, path: str | Path) -> None:
        """Write the codec as JSON (e.g. as an MLflow artifact)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> RecordCodec:
        """Read a codec written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordCodec) and self.specs == other.specs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self.specs:
            return "RecordCodec(unfitted)"
        return f"RecordCodec({len(self.specs)} columns -> {self.n_outputs} outputs)"
