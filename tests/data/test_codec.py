"""Tests for anomigan.data.codec.RecordCodec: round trips, ranges, persistence, schema errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from anomigan.data import load_dataset
from anomigan.data.codec import RecordCodec, SchemaError
from anomigan.mlops.serving import input_schema

SECRET = "SECRETVALUE"  # planted in bad cells: must never appear in an error message
FAST = settings(max_examples=40, deadline=None)


def training_frame() -> pd.DataFrame:
    """Small frame covering every column kind, including missing values."""
    return pd.DataFrame(
        {
            "age": pd.Series([30, 45, 60, 75, 52, 41], dtype="int64"),
            "weight": [61.5, 70.25, np.nan, 99.0, 80.0, 75.5],
            "visits": [0.0, 3.0, np.nan, 12.0, 5.0, 1.0],  # integral floats with NaN
            "smoker": pd.Series(["no", "yes", "no", None, "no", "yes"], dtype="str"),
            "colour": pd.Series(["red", "green", "blue", "red", np.nan, "red"], dtype="str"),
            "flag": pd.Series(["only"] * 6, dtype="str"),
        }
    )


CODEC = RecordCodec().fit(training_frame())


def assert_valid(codec: RecordCodec, out: pd.DataFrame, n: int) -> None:
    """Decoded output: complete, right columns/dtypes, categories and ranges respected."""
    assert len(out) == n
    assert list(out.columns) == codec.columns
    assert not out.isna().any().any()
    for spec in codec.specs:
        col = out[spec.name]
        assert str(col.dtype) == spec.dtype, spec.name
        if spec.kind == "numeric":
            values = col.to_numpy(dtype="float64")
            assert (values >= spec.min).all() and (values <= spec.max).all(), spec.name
            if spec.integer:
                assert (values == np.round(values)).all(), spec.name
            if spec.decimals >= 0:  # written with the training data's precision
                assert (values == np.round(values, spec.decimals)).all(), spec.name
        else:
            assert set(col) <= set(spec.vocabulary), spec.name


# ------------------------------------------------------------------------------ fitting


def test_fitted_schema() -> None:
    specs = {s.name: s for s in CODEC.specs}
    assert CODEC.columns == ["age", "weight", "visits", "smoker", "colour", "flag"]
    assert specs["age"].integer and specs["age"].dtype == "int64"
    assert (specs["age"].min, specs["age"].max) == (30.0, 75.0)
    assert not specs["weight"].integer and specs["weight"].median == 75.5
    assert specs["weight"].decimals == 2 and specs["visits"].decimals == 0  # 70.25, 3.0
    assert specs["visits"].integer and specs["visits"].dtype == "float64"
    assert specs["smoker"].vocabulary == ["no", "yes"] and specs["smoker"].mode == "no"
    assert specs["colour"].vocabulary == ["blue", "green", "red"]
    assert specs["colour"].mode == "red"
    assert CODEC.n_outputs == 1 + 1 + 1 + 1 + 3 + 1
    assert CODEC.model_space_names() == [
        "age",
        "weight",
        "visits",
        "smoker",
        "colour=blue",
        "colour=green",
        "colour=red",
        "flag",
    ]


def test_encode_imputes_and_scales() -> None:
    z = CODEC.encode(training_frame())
    assert z.dtype == np.float32 and z.shape == (6, CODEC.n_outputs)
    assert z.min() >= 0.0 and z.max() <= 1.0
    assert z[0, 0] == 0.0 and z[3, 0] == 1.0  # training min / max
    assert z[2, 1] == pytest.approx((75.5 - 61.5) / (99.0 - 61.5))  # median imputation
    assert z[3, 3] == 0.0  # missing smoker -> mode "no" -> 0
    assert z[4, 4:7].tolist() == [0.0, 0.0, 1.0]  # missing colour -> mode "red"
    assert (z[:, 4:7].sum(axis=1) == 1).all()


def test_encode_clips_out_of_range() -> None:
    frame = training_frame().iloc[:2].copy()
    frame["age"] = [10, 200]
    z = CODEC.encode(frame)
    assert z[:, 0].tolist() == [0.0, 1.0]


def test_decode_has_no_missing_and_fitted_dtypes() -> None:
    out = CODEC.decode(CODEC.encode(training_frame()))
    assert_valid(CODEC, out, 6)
    assert out.loc[2, "weight"] == pytest.approx(75.5)
    assert out.loc[3, "smoker"] == "no"
    assert out.loc[4, "colour"] == "red"


def test_decode_rounds_to_the_training_precision() -> None:
    frame = pd.DataFrame({"a": [17.99, 10.38, 20.57], "b": [0.1184, 0.08474, 0.1096]})
    frame["c"] = [np.pi, np.e, 1.0]  # more than 8 decimals: left as computed
    codec = RecordCodec().fit(frame)
    assert [s.decimals for s in codec.specs] == [2, 5, -1]
    out = codec.decode(np.array([[0.3333333, 0.7777777, 0.1234567]], np.float32))
    assert out.loc[0, "a"] == 13.78 and out.loc[0, "b"] == 0.11092
    assert str(out.loc[0, "a"]) == "13.78"  # no float32 noise in what is written out
    assert out.loc[0, "c"] != round(out.loc[0, "c"], 6)
    old = RecordCodec.from_dict(
        {
            **codec.to_dict(),
            "columns": [
                {k: v for k, v in c.items() if k != "decimals"} for c in codec.to_dict()["columns"]
            ],
        }
    )  # a codec.json written before `decimals` existed decodes without rounding
    assert [s.decimals for s in old.specs] == [-1, -1, -1]


def test_ckd_codec_round_trip_dtypes() -> None:
    ds = load_dataset("ckd")
    codec = RecordCodec().fit(ds.features)
    assert codec.n_outputs == 24  # every nominal CKD column is binary
    out = codec.decode(codec.encode(ds.features))
    assert_valid(codec, out, 400)
    assert (out.dtypes == ds.features.dtypes).all()
    complete = ds.features.dropna()
    again = codec.decode(codec.encode(complete))
    for col in ds.features.columns:
        if pd.api.types.is_numeric_dtype(complete[col]):
            np.testing.assert_allclose(again[col], complete[col], rtol=1e-5)
        else:
            assert again[col].tolist() == complete[col].tolist()


# ------------------------------------------------------------------------------ properties

LEVELS = ["a", "b", "c", "d"]


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    """Random complete frames: int64, float64, integral float64, binary and multi-level str."""
    n = draw(st.integers(min_value=1, max_value=25))
    ints = st.integers(min_value=-100_000, max_value=100_000)
    floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False)
    n_levels = draw(st.integers(min_value=1, max_value=len(LEVELS)))
    return pd.DataFrame(
        {
            "i": pd.Series(draw(st.lists(ints, min_size=n, max_size=n)), dtype="int64"),
            "f": pd.Series(draw(st.lists(floats, min_size=n, max_size=n)), dtype="float64"),
            "g": pd.Series(
                draw(st.lists(st.integers(0, 50), min_size=n, max_size=n)), dtype="float64"
            ),
            "bin": pd.Series(
                draw(st.lists(st.sampled_from(["no", "yes"]), min_size=n, max_size=n)),
                dtype="str",
            ),
            "cat": pd.Series(
                draw(st.lists(st.sampled_from(LEVELS[:n_levels]), min_size=n, max_size=n)),
                dtype="str",
            ),
        }
    )


@FAST
@given(frames())
def test_round_trip_property(df: pd.DataFrame) -> None:
    codec = RecordCodec().fit(df)
    z = codec.encode(df)
    assert z.dtype == np.float32
    assert z.shape == (len(df), codec.n_outputs)
    assert (z >= 0.0).all() and (z <= 1.0).all()
    out = codec.decode(z)
    assert list(out.columns) == list(df.columns)
    assert (out.dtypes == df.dtypes).all()
    assert out["i"].tolist() == df["i"].tolist()  # integers exact
    assert out["g"].tolist() == df["g"].tolist()  # integral floats exact
    span = df["f"].max() - df["f"].min()
    np.testing.assert_allclose(out["f"], df["f"], rtol=0, atol=1e-6 * span + 1e-9)
    assert out["bin"].tolist() == df["bin"].tolist()
    assert out["cat"].tolist() == df["cat"].tolist()


@FAST
@given(frames(), st.data())
def test_round_trip_subset_in_training_range(df: pd.DataFrame, data: st.DataObject) -> None:
    """Records not seen in training but inside its range/vocabulary also round-trip."""
    codec = RecordCodec().fit(df)
    take = data.draw(st.lists(st.integers(0, len(df) - 1), min_size=1, max_size=10))
    sub = df.iloc[take].reset_index(drop=True)
    out = codec.decode(codec.encode(sub))
    assert out["i"].tolist() == sub["i"].tolist()
    assert out["cat"].tolist() == sub["cat"].tolist()
    assert (out.dtypes == sub.dtypes).all()


@FAST
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 20), st.just(CODEC.n_outputs)),
        elements=st.floats(0.0, 1.0),
    )
)
def test_decode_arbitrary_unit_vectors(z: np.ndarray) -> None:
    assert_valid(CODEC, CODEC.decode(z), len(z))


@FAST
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.just(CODEC.n_outputs)),
        elements=st.floats(-3.0, 3.0, width=32),
    )
)
def test_decode_clips_out_of_unit_range(z: np.ndarray) -> None:
    out = CODEC.decode(z)
    assert_valid(CODEC, out, len(z))
    # and the decoded records re-encode into the unit cube
    again = CODEC.encode(out)
    assert (again >= 0).all() and (again <= 1).all()


def test_decode_rejects_bad_arrays() -> None:
    with pytest.raises(SchemaError, match="shape"):
        CODEC.decode(np.zeros((2, CODEC.n_outputs + 1)))
    z = np.zeros((2, CODEC.n_outputs))
    z[1, 2] = np.nan
    with pytest.raises(SchemaError, match="NaN"):
        CODEC.decode(z)


# ------------------------------------------------------------------------------ persistence


def test_to_dict_round_trip(tmp_path: Path) -> None:
    d = CODEC.to_dict()
    assert json.loads(json.dumps(d)) == d
    clone = RecordCodec.from_dict(json.loads(json.dumps(d)))
    assert clone == CODEC
    assert clone.to_dict() == d
    z = CODEC.encode(training_frame())
    np.testing.assert_array_equal(clone.encode(training_frame()), z)
    pd.testing.assert_frame_equal(clone.decode(z), CODEC.decode(z))
    path = tmp_path / "codec.json"
    CODEC.save(path)
    assert RecordCodec.load(path) == CODEC
    with pytest.raises(SchemaError):
        RecordCodec.from_dict({"format": "something else"})


def test_input_schema() -> None:
    schema = input_schema(CODEC)
    types = {c.name: c.type.name for c in schema.inputs}
    assert types == {
        "age": "long",
        "weight": "double",
        "visits": "double",
        "smoker": "string",
        "colour": "string",
        "flag": "string",
    }


def test_unfitted_codec() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        RecordCodec().encode(training_frame())


# ------------------------------------------------------------------------------ schema errors


def schema_error(frame: pd.DataFrame) -> str:
    with pytest.raises(SchemaError) as info:
        CODEC.encode(frame)
    msg = str(info.value)
    assert SECRET not in msg
    return msg


def test_validate_returns_clean_frame_in_fit_order() -> None:
    frame = training_frame()[list(reversed(CODEC.columns))]
    frame["age"] = frame["age"].astype(str)  # e.g. JSON strings from a client
    clean = CODEC.validate(frame)
    assert list(clean.columns) == CODEC.columns
    assert clean["age"].dtype == "float64"
    assert clean["weight"].isna().sum() == 1  # missing values are kept for imputation


def test_missing_and_extra_columns() -> None:
    frame = training_frame().drop(columns=["weight", "colour"]).assign(extra=1, more=2)
    msg = schema_error(frame)
    assert "missing columns ['weight', 'colour']" in msg
    assert "unexpected columns ['extra', 'more']" in msg


def test_text_in_numeric_column() -> None:
    frame = training_frame()
    frame["weight"] = frame["weight"].astype(object)
    frame.loc[4, "weight"] = SECRET
    msg = schema_error(frame)
    assert "'weight'" in msg and "[4]" in msg


def test_infinite_value() -> None:
    frame = training_frame()
    frame.loc[1, "weight"] = np.inf
    msg = schema_error(frame)
    assert "'weight'" in msg and "infinite" in msg and "[1]" in msg


def test_unknown_category() -> None:
    frame = training_frame()
    frame["colour"] = frame["colour"].astype(object)
    frame.loc[5, "colour"] = SECRET
    msg = schema_error(frame)
    assert "'colour'" in msg and "[5]" in msg and "not seen in training" in msg


def test_empty_frame() -> None:
    assert "empty" in schema_error(training_frame().iloc[:0])


def test_entirely_missing_record() -> None:
    frame = training_frame().astype(object)
    frame.loc[2, :] = None
    msg = schema_error(frame)
    assert "entirely missing" in msg and "[2]" in msg


def test_fit_rejects_bad_frames() -> None:
    with pytest.raises(SchemaError, match="empty"):
        RecordCodec().fit(pd.DataFrame())
    with pytest.raises(SchemaError, match="'x'"):
        RecordCodec().fit(pd.DataFrame({"x": [np.nan, np.nan], "y": [1, 2]}))
