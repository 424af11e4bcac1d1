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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from anomigan.data.schema import (
    ColumnSpec,
    SchemaError,
    check_columns,
    decimals,
    is_numeric_dtype,
    validate,
)

__all__ = ["ColumnSpec", "RecordCodec", "SchemaError"]

FORMAT_VERSION = 1


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
            if is_numeric_dtype(col.dtype):
                values = col.dropna().to_numpy(dtype="float64")
                if not np.isfinite(values).all():
                    raise SchemaError(f"column '{name}' has infinite values; cannot fit")
                specs.append(
                    ColumnSpec(
                        name=name,
                        kind="numeric",
                        dtype=dtype,
                        integer=bool(np.all(values == np.round(values))),
                        decimals=decimals(values),
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
        return check_columns(self.specs, names)

    def validate(self, features: pd.DataFrame) -> pd.DataFrame:
        """Check records against the schema; return them cleaned, in fit column order.

        Numeric columns come back as float64, categorical as object strings; NaN/None is
        kept (encode imputes it). Raises SchemaError naming columns/rows, never values.
        """
        self._check_fitted()
        return validate(self.specs, features)

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
