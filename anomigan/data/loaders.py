"""Data set loading and validation.

Three sources are supported: scikit-learn's breast cancer data (``"breast"``), the vendored
UCI Chronic Kidney Disease ARFF file (``"ckd"``) and any CSV file with a label column.

Every problem with the input is reported as a :class:`DataError` whose message names the
file, column and/or row but never a cell value: these are patient records and error
messages end up in logs and MLflow runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

__all__ = [
    "ARFF_MISSING",
    "CKD_FILE",
    "DataError",
    "Dataset",
    "Repair",
    "load_dataset",
    "parse_arff",
    "split_dataset",
]

CKD_FILE = "chronic_kidney_disease_full.arff"
ARFF_MISSING = "?"
# Share of non-missing values that must parse as numbers before stray text in a column is
# treated as an error rather than as a sign that the column is categorical.
NUMERIC_SHARE = 0.8
# Extra tokens treated as missing in CSV files (on top of pandas' defaults); UCI files use "?".
CSV_MISSING = ["?"]


class DataError(ValueError):
    """Bad input data. Message names the file, column and/or row, NEVER a cell value
    (patient data must not leak into logs)."""


@dataclass(frozen=True)
class Dataset:
    """A loaded data set: raw features plus raw labels, nothing encoded yet."""

    name: str
    features: pd.DataFrame
    labels: pd.Series
    label: str
    source: str

    def __post_init__(self) -> None:
        if len(self.features) != len(self.labels):
            raise DataError(
                f"{self.source}: {len(self.features)} feature rows but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class Repair:
    """One explicit fix applied to a raw ARFF data line (so repairs are auditable, not silent)."""

    line: int  # 1-based line number in the file
    row: int  # 0-based data row (position in the resulting frame)
    action: str  # human-readable description, value-free


@dataclass
class _Attribute:
    name: str
    levels: list[str] | None = None  # None -> numeric
    numeric_levels: bool = field(default=False)


# --------------------------------------------------------------------------------------------
# ARFF


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        return name[1:-1]
    return name


_ATTR_RE = re.compile(r"^@attribute\s+('[^']*'|\"[^\"]*\"|\S+)\s+(.*)$", re.IGNORECASE)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_arff(path: str | Path) -> tuple[pd.DataFrame, list[Repair]]:
    """Parse a (possibly slightly broken) dense ARFF file.

    Why our own parser: ``scipy.io.arff`` rejects the CKD file's quirks. Repairs made here:
    values are stripped of surrounding whitespace/tabs; a line with exactly one field too many
    where one field is empty has that empty field dropped (a stray comma); ``?`` is missing.
    Nominal attributes whose declared levels are all numbers (ordinal codes such as CKD's
    ``sg``, ``al``, ``su``) become float columns, like numeric attributes; other nominal
    attributes become string columns. Anything else that does not fit raises DataError.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file") from exc
    attrs: list[_Attribute] = []
    rows: list[list[str | None]] = []
    repairs: list[Repair] = []
    in_data = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@attribute"):
                m = _ATTR_RE.match(line)
                if m is None:
                    raise DataError(f"{path}: line {lineno}: malformed @attribute declaration")
                name, kind = _unquote(m.group(1)), m.group(2).strip()
                if kind.startswith("{"):
                    if not kind.endswith("}"):
                        raise DataError(f"{path}: line {lineno}: unterminated nominal levels")
                    levels = [_unquote(v) for v in kind[1:-1].split(",")]
                    attrs.append(_Attribute(name, levels, all(_is_number(v) for v in levels)))
                elif kind.lower() in ("numeric", "real", "integer"):
                    attrs.append(_Attribute(name))
                else:
                    raise DataError(
                        f"{path}: line {lineno}: attribute '{name}' has an unsupported type"
                    )
            elif low.startswith("@data"):
                if not attrs:
                    raise DataError(f"{path}: no @attribute declarations before @data")
                in_data = True
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == len(attrs) + 1:
            empty = [i for i, f in enumerate(fields) if f == ""]
            if len(empty) != 1:
                raise DataError(
                    f"{path}: line {lineno}: {len(fields)} fields, expected {len(attrs)}"
                )
            del fields[empty[0]]
            where = "trailing" if empty[0] == len(attrs) else f"after field {empty[0]}"
            repairs.append(
                Repair(lineno, len(rows), f"dropped empty field {where} (stray extra comma)")
            )
        elif len(fields) != len(attrs):
            raise DataError(f"{path}: line {lineno}: {len(fields)} fields, expected {len(attrs)}")
        values: list[str | None] = []
        for attr, value in zip(attrs, fields, strict=True):
            if value in (ARFF_MISSING, ""):
                values.append(None)
                continue
            if attr.levels is not None and _unquote(value) not in attr.levels:
                raise DataError(
                    f"{path}: line {lineno}: attribute '{attr.name}' has an undeclared level"
                )
            if attr.levels is None and not _is_number(value):
                raise DataError(
                    f"{path}: line {lineno}: numeric attribute '{attr.name}' has a non-number"
                )
            values.append(_unquote(value))
        rows.append(values)
    if not in_data:
        raise DataError(f"{path}: no @data section")
    if not rows:
        raise DataError(f"{path}: no data rows")
    columns: dict[str, pd.Series] = {}
    for j, attr in enumerate(attrs):
        col = [r[j] for r in rows]
        if attr.levels is None or attr.numeric_levels:
            columns[attr.name] = pd.Series(
                [np.nan if v is None else float(v) for v in col], dtype="float64"
            )
        else:
            columns[attr.name] = pd.Series(col, dtype="str")
    return pd.DataFrame(columns), repairs


def _load_ckd() -> Dataset:
    ref = resources.files(__package__).joinpath(CKD_FILE)
    with resources.as_file(ref) as path:
        frame, _ = parse_arff(path)
    label = "class"
    labels = frame[label]
    if labels.isna().any():
        rows = (np.flatnonzero(labels.isna().to_numpy()) + 1).tolist()
        raise DataError(f"{CKD_FILE}: label '{label}' missing in data rows {rows}")
    return Dataset(
        name="ckd",
        features=frame.drop(columns=[label]).reset_index(drop=True),
        labels=labels.astype("str").reset_index(drop=True).rename(label),
        label=label,
        source=f"package:{CKD_FILE}",
    )


def _load_breast() -> Dataset:
    bunch = load_breast_cancer(as_frame=True)
    names = np.asarray(bunch.target_names)
    labels = pd.Series(names[bunch.target.to_numpy()], name="diagnosis", dtype="str")
    return Dataset(
        name="breast",
        features=bunch.data.astype("float64").reset_index(drop=True),
        labels=labels,
        label="diagnosis",
        source="sklearn:load_breast_cancer",
    )


# --------------------------------------------------------------------------------------------
# CSV


def _rows(mask: np.ndarray, limit: int = 10) -> str:
    """1-based data row numbers for a boolean mask, truncated so messages stay short."""
    idx = (np.flatnonzero(mask) + 1).tolist()
    shown = ", ".join(str(i) for i in idx[:limit])
    return shown + (f" (+{len(idx) - limit} more)" if len(idx) > limit else "")


def _convert_column(src: str, name: str, col: pd.Series) -> pd.Series:
    """Decide numeric vs categorical for one string column; reject ambiguous ones."""
    present = col.notna().to_numpy()
    if not present.any():
        raise DataError(f"{src}: column '{name}' is entirely missing")
    numbers = pd.to_numeric(col, errors="coerce")
    parsed = numbers.notna().to_numpy()
    share = parsed.sum() / present.sum()
    if share < NUMERIC_SHARE:
        return col.astype("str")
    bad = present & ~parsed
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) + 1
        raise DataError(
            f"{src}: column '{name}' is numeric but data row {first} holds text "
            f"({int(bad.sum())} such row(s) in total)"
        )
    values = numbers.to_numpy(dtype="float64")
    inf = np.isinf(values)
    if inf.any():
        raise DataError(f"{src}: column '{name}' has infinite values in data rows {_rows(inf)}")
    if parsed.all() and np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        return pd.Series(values.astype("int64"), name=name)
    return pd.Series(values, name=name, dtype="float64")


def _load_csv(spec: str, label: str | None) -> Dataset:
    path = Path(spec)
    src = str(path)
    if not path.is_file():
        raise DataError(f"{src}: file not found")
    if label is None:
        raise DataError(f"{src}: a CSV data set needs the label column name (label=...)")
    try:
        raw = pd.read_csv(path, dtype=str, na_values=CSV_MISSING, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{src}: file is empty") from exc
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f" at line {m.group(1)}" if m else ""
        raise DataError(f"{src}: malformed CSV{where} (inconsistent number of fields?)") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{src}: not a UTF-8 text file") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise DataError(f"{src}: file has a header but no data rows")
    raw = raw.apply(lambda c: c.str.strip()).replace("", np.nan)
    if label not in raw.columns:
        raise DataError(f"{src}: label column '{label}' not found; columns are {list(raw.columns)}")
    if raw.shape[1] < 2:
        raise DataError(f"{src}: no feature columns besides the label '{label}'")
    lab = raw[label]
    missing = lab.isna().to_numpy()
    if missing.any():
        raise DataError(f"{src}: label '{label}' is missing in data rows {_rows(missing)}")
    numbers = pd.to_numeric(lab, errors="coerce")
    if numbers.notna().all() and np.all(numbers == np.round(numbers)):
        labels = numbers.astype("int64")
    else:
        labels = lab.astype("str")
    if labels.nunique() < 2:
        raise DataError(f"{src}: label '{label}' has only one class; need at least two")
    features = pd.DataFrame(
        {name: _convert_column(src, name, raw[name]) for name in raw.columns if name != label}
    )
    return Dataset(
        name=path.stem,
        features=features.reset_index(drop=True),
        labels=labels.reset_index(drop=True).rename(label),
        label=label,
        source=src,
    )


# --------------------------------------------------------------------------------------------
# public API


def load_dataset(spec: str, label: str | None = None) -> Dataset:
    """Load ``"breast"``, ``"ckd"`` or a CSV path (``label`` names its label column).

    CSV columns where at least 80% of the non-missing values are numbers are numeric
    (int64 when complete and integral, else float64); other columns are categorical strings.
    Empty cells, pandas' usual NA tokens and ``?`` are missing.
    """
    if spec == "breast":
        return _load_breast()
    if spec == "ckd":
        return _load_ckd()
    return _load_csv(spec, label)


def _min_rows_for_split(n_classes: int, test_size: float) -> int:
    """Smallest total row count whose test split (ceil like sklearn) holds one row per class."""
    n = 2 * n_classes
    while math.ceil(test_size * n) < n_classes or n - math.ceil(test_size * n) < n_classes:
        n += 1
    return n


#: shares of the whole data set held out: test (only reported) and validation (carved from the
#: training split, for every choice made from measurements)
TEST_SIZE = 0.1
VAL_SIZE = 0.1


def split_dataset(
    ds: Dataset, test_size: float = TEST_SIZE, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Stratified, seeded train/test split; both halves keep every class.

    Checked up front so the user gets a DataError saying how many rows are needed rather than
    an sklearn error or, worse, a test split that silently lacks a class.
    """
    if not 0.0 < test_size < 1.0:
        raise DataError(f"{ds.source}: test_size must be in (0, 1), got {test_size}")
    counts = ds.labels.value_counts()
    n_classes = len(counts)
    if n_classes < 2:
        raise DataError(f"{ds.source}: label '{ds.label}' has only one class; need at least two")
    per_class = max(2, math.ceil(1.0 / test_size - 1e-9))
    smallest = int(counts.min())
    if smallest < per_class:
        raise DataError(
            f"{ds.source}: too few rows to split with test_size={test_size}: every class needs "
            f"at least {per_class} rows so that both splits get one, the smallest class has "
            f"{smallest}"
        )
    needed = _min_rows_for_split(n_classes, test_size)
    if len(ds) < needed:
        raise DataError(
            f"{ds.source}: too few rows to split with test_size={test_size}: "
            f"{n_classes} classes need at least {needed} rows, have {len(ds)}"
        )
    idx = np.arange(len(ds))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_size, random_state=seed, stratify=ds.labels.to_numpy()
    )
    parts = []
    for part in (np.sort(train_idx), np.sort(test_idx)):
        labels = ds.labels.iloc[part].reset_index(drop=True)
        if labels.nunique() != n_classes:  # pragma: no cover - guarded by the checks above
            raise DataError(f"{ds.source}: split lost a class; use more rows or a larger split")
        parts.append(
            Dataset(
                name=ds.name,
                features=ds.features.iloc[part].reset_index(drop=True),
                labels=labels,
                label=ds.label,
                source=ds.source,
            )
        )
    return parts[0], parts[1]
