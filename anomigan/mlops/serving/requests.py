"""Scoring requests: parsed and checked before any model sees them, with value-free errors.

Accepts MLflow's JSON protocol and CSV; every failure is an `InvalidRecords` whose message
names a column, a row or a limit and never a submitted value (these are patient records).
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pandas as pd

#: A request may carry at most this many records (env `ANOMIGAN_MAX_ROWS`); bigger files go
#: through `anomigan anonymize`, which streams them.
DEFAULT_MAX_ROWS = 100_000
#: Bodies larger than this are refused before parsing (env `ANOMIGAN_MAX_BODY_BYTES`).
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
#: Env switches of the encoder server (off unless set to 1/true/yes): impute missing cells
#: instead of refusing them; honour `params: {"seed": N}` (a known seed makes outputs linkable).
ALLOW_MISSING_ENV = "ANOMIGAN_ALLOW_MISSING"
ALLOW_SEED_ENV = "ANOMIGAN_ALLOW_SEED"
MAX_SEED = 2**63 - 1


class InvalidRecords(ValueError):
    """A request's records cannot be anonymised; the message names columns/rows, never values."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def check_seed(value: object) -> int | None:
    """A request's seed: None, or an integer in [0, 2**63 - 1] (bools and floats refused)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not (0 <= int(value) <= MAX_SEED)
    ):
        raise InvalidRecords("params.seed must be an integer from 0 to 2**63 - 1")
    return int(value)


def _max_rows() -> int:
    return int(os.environ.get("ANOMIGAN_MAX_ROWS", DEFAULT_MAX_ROWS))


def _max_body() -> int:
    return int(os.environ.get("ANOMIGAN_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def parse_request(data: bytes | str, content_type: str | None) -> pd.DataFrame:
    """Parse a scoring request into a DataFrame with value-free errors (params dropped)."""
    return parse_invocation(data, content_type)[0]


def parse_invocation(
    data: bytes | str, content_type: str | None, all_numeric: bool = False
) -> tuple[pd.DataFrame, dict]:
    """Parse a scoring request into (records, params) with value-free errors.

    Accepts MLflow's JSON protocol (`dataframe_split` or `dataframe_records`, optionally
    `params`) and CSV (no params). The row limit is checked before a DataFrame is built.
    `all_numeric` (every model column is numeric) lets a split table become one float array;
    with categorical columns that would turn a number sent for a category into "1.0".
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime not in ("application/json", "text/csv"):
        raise InvalidRecords(
            "unsupported content type: send application/json or text/csv", status=415
        )
    if len(data) > _max_body():
        raise InvalidRecords(
            f"request body of {len(data)} bytes exceeds the limit of {_max_body()} bytes; "
            "split it, or anonymise files with `anomigan anonymize`",
            status=413,
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecords(f"request body is not UTF-8 (byte {exc.start})") from None
    if not data.strip():
        raise InvalidRecords(
            "empty request body: send records as dataframe_split or dataframe_records"
        )
    params: dict = {}
    if mime == "text/csv":
        try:
            frame = pd.read_csv(io.StringIO(data))
        except Exception:
            raise InvalidRecords("request body is not a readable CSV table") from None
        _check_row_count(len(frame))
    else:
        frame, params = _parse_json(data, all_numeric)
    return frame, params


def _check_row_count(n: int) -> None:
    if n == 0:
        raise InvalidRecords("the request holds no records")
    if n > _max_rows():
        raise InvalidRecords(
            f"{n} records exceed the limit of {_max_rows()} per request "
            f"(ANOMIGAN_MAX_ROWS); split the request, or anonymise files with "
            "`anomigan anonymize`",
            status=413,
        )


def _parse_json(data: str, all_numeric: bool = False) -> tuple[pd.DataFrame, dict]:
    try:
        body = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidRecords(
            f"request body is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    keys = ("dataframe_split", "dataframe_records")
    if not isinstance(body, dict) or sum(k in body for k in keys) != 1:
        raise InvalidRecords(
            "the JSON body must be an object with exactly one of the keys "
            "'dataframe_split' or 'dataframe_records'"
        )
    if not set(body) <= {*keys, "params"}:
        raise InvalidRecords(
            "unexpected key in the JSON body: only 'dataframe_split' or 'dataframe_records' "
            "and optionally 'params' are allowed"
        )
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidRecords("'params' must be a JSON object, e.g. {\"seed\": 7}")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
            raise InvalidRecords("'dataframe_split' must be an object with 'columns' and 'data'")
        rows = split.get("data")
        if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
            raise InvalidRecords("'dataframe_split.data' must be a list of rows (lists)")
        _check_row_count(len(rows))
        width = len(split["columns"])
        for i, row in enumerate(rows):
            if len(row) != width:
                raise InvalidRecords(
                    f"row {i} has {len(row)} values but 'columns' names {width} columns"
                )
        if any(not isinstance(c, str) for c in split["columns"]):
            raise InvalidRecords("'dataframe_split.columns' must be a list of column names")
        if all_numeric and rows:  # one numpy conversion, much faster than pandas'
            try:
                table = np.asarray(rows, dtype="float64")
                return pd.DataFrame(table, columns=split["columns"]), params
            except (TypeError, ValueError):
                pass  # text or nested values: pandas builds the frame, the codec names them
        return pd.DataFrame(rows, columns=split["columns"]), params
    records = body["dataframe_records"]
    if not isinstance(records, list) or any(not isinstance(r, dict) for r in records):
        raise InvalidRecords("'dataframe_records' must be a list of objects (one per record)")
    _check_row_count(len(records))
    return pd.DataFrame.from_records(records), params
