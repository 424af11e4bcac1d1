"""Tests for anomigan.data: built-in data sets, the CKD repairs, CSV validation, splitting."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomigan.data import CKD_FILE, DataError, Dataset, load_dataset, parse_arff, split_dataset

SECRET = "SECRETVALUE"  # planted in bad cells: must never appear in an error message


@pytest.fixture(scope="module")
def ckd() -> Dataset:
    return load_dataset("ckd")


@pytest.fixture(scope="module")
def breast() -> Dataset:
    return load_dataset("breast")


def write(tmp_path: Path, text: str, name: str = "records.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_for(spec: str, label: str | None = "y") -> str:
    with pytest.raises(DataError) as info:
        load_dataset(spec, label=label)
    return str(info.value)


# ------------------------------------------------------------------------------ built-ins


def test_breast_shape_and_labels(breast: Dataset) -> None:
    assert breast.features.shape == (569, 30)
    assert (breast.features.dtypes == "float64").all()
    assert breast.label == "diagnosis"
    assert breast.source == "sklearn:load_breast_cancer"
    assert breast.name == "breast"
    assert breast.labels.value_counts().to_dict() == {"benign": 357, "malignant": 212}
    assert isinstance(breast.features.index, pd.RangeIndex)


def test_ckd_shape_and_classes(ckd: Dataset) -> None:
    assert ckd.features.shape == (400, 24)
    assert ckd.labels.value_counts().to_dict() == {"ckd": 250, "notckd": 150}
    assert ckd.label == "class"
    assert "class" not in ckd.features.columns
    assert ckd.source == f"package:{CKD_FILE}"
    assert isinstance(ckd.features.index, pd.RangeIndex)


def test_ckd_dtypes(ckd: Dataset) -> None:
    numeric = ["age", "bp", "sg", "al", "su", "bgr", "bu", "sc", "sod", "pot", "hemo", "pcv"]
    numeric += ["wbcc", "rbcc"]
    for col in numeric:
        assert ckd.features[col].dtype == "float64", col
    nominal = [c for c in ckd.features.columns if c not in numeric]
    assert len(nominal) == 10
    for col in nominal:
        assert not pd.api.types.is_numeric_dtype(ckd.features[col]), col
    # ordinal codes declared nominal in the header are parsed as numbers
    assert set(ckd.features["sg"].dropna()) <= {1.005, 1.010, 1.015, 1.020, 1.025}
    assert set(ckd.features["al"].dropna()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    assert set(ckd.features["su"].dropna()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    assert ckd.features.isna().any().any()  # "?" became missing


def test_ckd_no_stray_whitespace(ckd: Dataset) -> None:
    frames = [ckd.features.select_dtypes(exclude="number"), ckd.labels.to_frame()]
    for frame in frames:
        for col in frame.columns:
            values = frame[col].dropna()
            assert (values == values.str.strip()).all(), col
            assert not values.str.contains(r"[\t ?]").any(), col
    assert set(ckd.features["htn"].dropna()) == {"yes", "no"}
    assert set(ckd.features["appet"].dropna()) == {"good", "poor"}


def test_ckd_repairs_are_explicit_and_kept(ckd: Dataset) -> None:
    ref = resources.files("anomigan.data").joinpath(CKD_FILE)
    with resources.as_file(ref) as path:
        frame, repairs = parse_arff(path)
    assert len(frame) == 400
    assert [(r.line, r.row) for r in repairs] == [(215, 69), (218, 72), (515, 369)]
    assert all("stray extra comma" in r.action for r in repairs)
    rows = ckd.features.iloc[[69, 72, 369]]
    assert rows["age"].tolist() == [26.0, 64.0, 75.0]
    assert rows["ane"].tolist() == ["no", "no", "no"]
    assert ckd.labels.iloc[[69, 72, 369]].tolist() == ["ckd", "ckd", "notckd"]
    # line 515's stray comma sits mid-row: the fields after it must not have shifted
    assert rows.iloc[2][["htn", "dm", "cad", "appet", "pe"]].tolist() == [
        "no",
        "no",
        "no",
        "good",
        "no",
    ]


def test_arff_unrepairable_row_is_an_error(tmp_path: Path) -> None:
    text = "@relation r\n@attribute a numeric\n@attribute b {x,y}\n@data\n1,x\n2,y,,\n"
    with pytest.raises(DataError, match="line 6"):
        parse_arff(write(tmp_path, text, "bad.arff"))
    text = f"@relation r\n@attribute a numeric\n@attribute b {{x,y}}\n@data\n1,{SECRET}\n"
    with pytest.raises(DataError, match="'b'") as info:
        parse_arff(write(tmp_path, text, "bad.arff"))
    assert SECRET not in str(info.value)


# ------------------------------------------------------------------------------ CSV


def test_csv_mixed_with_missing(tmp_path: Path) -> None:
    text = (
        "age,weight,colour,smoker,y\n"
        "40,70.5,red,yes,sick\n"
        "51,,blue,no,well\n"
        "62,80.25,,no,sick\n"
        " 33 , 61.0 , green ,?,well\n"
        "45,90,red,yes,well\n"
    )
    ds = load_dataset(write(tmp_path, text, "patients.csv"), label="y")
    assert ds.name == "patients"
    assert ds.label == "y"
    assert ds.source.endswith("patients.csv")
    assert list(ds.features.columns) == ["age", "weight", "colour", "smoker"]
    assert ds.features["age"].dtype == "int64"
    assert ds.features["weight"].dtype == "float64"
    assert not pd.api.types.is_numeric_dtype(ds.features["colour"])
    assert ds.features["colour"].tolist()[3] == "green"
    assert ds.features["weight"].isna().sum() == 1
    assert ds.features["colour"].isna().sum() == 1
    assert ds.features["smoker"].isna().sum() == 1
    assert ds.labels.tolist() == ["sick", "well", "sick", "well", "well"]


def test_csv_integer_labels(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path, "a,y\n1,0\n2,1\n3,0\n"), label="y")
    assert ds.labels.dtype == "int64"
    assert ds.labels.tolist() == [0, 1, 0]


def test_mostly_text_column_is_categorical(tmp_path: Path) -> None:
    values = ["1", "a", "b", "c", "d", "2"]
    text = "code,y\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(values))
    ds = load_dataset(write(tmp_path, text), label="y")
    assert ds.features["code"].tolist() == values


def test_file_missing(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.csv")
    msg = error_for(path)
    assert "nope.csv" in msg and "not found" in msg


def test_label_argument_required(tmp_path: Path) -> None:
    msg = error_for(write(tmp_path, "a,y\n1,0\n2,1\n"), label=None)
    assert "label" in msg


def test_empty_file(tmp_path: Path) -> None:
    msg = error_for(write(tmp_path, "", "empty.csv"))
    assert "empty.csv" in msg and "empty" in msg
    msg = error_for(write(tmp_path, "a,y\n", "header.csv"))
    assert "header.csv" in msg and "no data rows" in msg


def test_malformed_csv(tmp_path: Path) -> None:
    msg = error_for(write(tmp_path, f"a,y\n1,0\n2,1,{SECRET},4\n", "broken.csv"))
    assert "broken.csv" in msg and "malformed" in msg and "line 3" in msg
    assert SECRET not in msg


def test_label_column_missing(tmp_path: Path) -> None:
    msg = error_for(write(tmp_path, "a,b\n1,0\n2,1\n"), label="outcome")
    assert "'outcome'" in msg and "['a', 'b']" in msg


def test_single_class(tmp_path: Path) -> None:
    msg = error_for(write(tmp_path, f"a,y\n1,{SECRET}\n2,{SECRET}\n"))
    assert "one class" in msg and "'y'" in msg
    assert SECRET not in msg


def test_label_missing_rows(tmp_path: Path) -> None:
    msg = error_for(write(tmp_path, "a,y\n1,a\n2,\n3,b\n4,?\n"))
    assert "'y'" in msg and "2, 4" in msg


def test_all_missing_feature(tmp_path: Path) -> None:
    msg = error_for(write(tmp_path, "a,blank,y\n1,,a\n2,?,b\n"))
    assert "'blank'" in msg and "entirely missing" in msg


def test_text_in_numeric_column(tmp_path: Path) -> None:
    rows = [f"{i}.5,{i % 2}" for i in range(9)]
    rows.insert(6, f"{SECRET},1")
    msg = error_for(write(tmp_path, "dose,y\n" + "\n".join(rows) + "\n", "dose.csv"))
    assert "dose.csv" in msg and "'dose'" in msg and "row 7" in msg
    assert SECRET not in msg


def test_infinite_value(tmp_path: Path) -> None:
    msg = error_for(write(tmp_path, "a,y\n1,0\ninf,1\n3,0\n-Infinity,1\n"))
    assert "'a'" in msg and "infinite" in msg and "2, 4" in msg
    assert "inf" not in msg.replace("infinite", "")


# ------------------------------------------------------------------------------ split


def test_split_sizes(breast: Dataset, ckd: Dataset) -> None:
    for ds, (n_train, n_test) in ((breast, (512, 57)), (ckd, (360, 40))):
        train, test = split_dataset(ds, test_size=0.1, seed=0)
        assert (len(train), len(test)) == (n_train, n_test)
        for part in (train, test):
            assert isinstance(part.features.index, pd.RangeIndex)
            assert isinstance(part.labels.index, pd.RangeIndex)
            assert part.label == ds.label and part.name == ds.name


def test_split_is_stratified(ckd: Dataset) -> None:
    train, test = split_dataset(ckd, test_size=0.1, seed=3)
    assert test.labels.value_counts().to_dict() == {"ckd": 25, "notckd": 15}
    assert train.labels.value_counts().to_dict() == {"ckd": 225, "notckd": 135}


def test_split_is_seeded(breast: Dataset) -> None:
    a_train, a_test = split_dataset(breast, seed=7)
    b_train, b_test = split_dataset(breast, seed=7)
    c_train, _ = split_dataset(breast, seed=8)
    pd.testing.assert_frame_equal(a_train.features, b_train.features)
    pd.testing.assert_series_equal(a_test.labels, b_test.labels)
    assert not a_train.features.equals(c_train.features)
    # train and test are disjoint and cover the data
    both = pd.concat([a_train.features, a_test.features])
    assert len(both.drop_duplicates()) == len(breast.features.drop_duplicates())


def small(n_per_class: int) -> Dataset:
    n = 2 * n_per_class
    return Dataset(
        name="small",
        features=pd.DataFrame({"x": np.arange(n, dtype="float64")}),
        labels=pd.Series(["a", "b"] * n_per_class, name="y"),
        label="y",
        source="small.csv",
    )


def test_split_too_few_rows() -> None:
    with pytest.raises(DataError) as info:
        split_dataset(small(1), test_size=0.5)
    assert "at least 2 rows" in str(info.value) and "small.csv" in str(info.value)
    with pytest.raises(DataError) as info:
        split_dataset(small(5), test_size=0.1)
    assert "at least 10 rows" in str(info.value) and "has 5" in str(info.value)
    train, test = split_dataset(small(10), test_size=0.1)
    assert set(test.labels) == {"a", "b"} and set(train.labels) == {"a", "b"}


def test_split_one_class_and_bad_size() -> None:
    ds = small(5)
    one = Dataset(ds.name, ds.features, pd.Series(["a"] * 10, name="y"), "y", ds.source)
    with pytest.raises(DataError, match="one class"):
        split_dataset(one)
    with pytest.raises(DataError, match="test_size"):
        split_dataset(ds, test_size=1.5)
