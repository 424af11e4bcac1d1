"""The codec's schema: what it learned about each raw column, and the check of records
against it, whose errors name columns and rows and never a value (these are patient records).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ColumnSpec", "SchemaError", "check_columns", "row_labels", "validate"]


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


def row_labels(index: pd.Index, mask: np.ndarray, limit: int = 10) -> str:
    """Index labels of flagged rows, truncated, for messages."""
    labels = [str(v) for v in index[mask][:limit]]
    more = int(mask.sum()) - len(labels)
    return "[" + ", ".join(labels) + "]" + (f" (+{more} more)" if more > 0 else "")


def decimals(values: np.ndarray, most: int = 8) -> int:
    """Fewest decimals that write every value exactly (e.g. 2 for 17.99), or -1 beyond `most`.

    Decoding rounds to it, so released records look like the source data (17.99, not
    17.990000915527344: the encoder computes in float32, digits beyond the data's are noise).
    """
    for k in range(most + 1):
        if np.allclose(np.round(values, k), values, rtol=1e-12, atol=0.0):
            return k
    return -1


def is_numeric_dtype(dtype: Any) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def check_columns(specs: list[ColumnSpec], names: Iterable[object]) -> list[str]:
    """The given column names as strings, if they are exactly the codec's (any order);
    else SchemaError naming the missing and unexpected ones. Needs no rows, so a job can
    check a table's header before reading it."""
    expected = [s.name for s in specs]
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


def validate(specs: list[ColumnSpec], features: pd.DataFrame) -> pd.DataFrame:
    """Check records against the schema; return them cleaned, in fit column order.

    Numeric columns come back as float64, categorical as object strings; NaN/None is
    kept (encode imputes it). Raises SchemaError naming columns/rows, never values.
    """
    if not isinstance(features, pd.DataFrame):
        raise SchemaError("records must be a pandas DataFrame")
    if len(features) == 0:
        raise SchemaError("no records (empty frame)")
    given = check_columns(specs, features.columns)
    frame = features
    if given != list(features.columns):
        frame = features.copy()
        frame.columns = given
    # Fast path (one block, no per-column pandas calls): numeric columns that already hold
    # plain numpy numbers. A single-record request is dominated by per-column overhead.
    dtypes = dict(zip(given, frame.dtypes.tolist(), strict=True))
    fast = [
        s.name
        for s in specs
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
    for s in specs:
        if s.name in fast_pos:
            k = fast_pos[s.name]
            if block_inf[k]:
                inf = np.isinf(block[:, k])
                raise SchemaError(
                    f"column '{s.name}' has infinite values in rows {row_labels(frame.index, inf)}"
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
                    f"{row_labels(frame.index, bad)}"
                )
            inf = np.isinf(num.to_numpy())
            if inf.any():
                raise SchemaError(
                    f"column '{s.name}' has infinite values in rows {row_labels(frame.index, inf)}"
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
                    f"{row_labels(frame.index, unknown)}"
                )
            out[s.name] = text
    if fast == [s.name for s in specs]:  # all plain numbers: one 2-D block, no per-column copies
        result = pd.DataFrame(block, columns=fast, index=frame.index, copy=False)
    else:
        result = pd.DataFrame(out, index=frame.index)
    if len(fast) == len(specs) and not np.isnan(block).any():
        return result  # complete numbers: no row can be entirely missing
    empty = result.isna().all(axis=1).to_numpy()
    if empty.any():
        raise SchemaError(f"records are entirely missing in rows {row_labels(frame.index, empty)}")
    return result
