"""Full signatures on every registered pyfunc, and value-free errors despite them.

The signature names every input column with its type (categories as `string`, integers as
`long`), marks the target's columns optional (it imputes missing cells) and lists the outputs.
MLflow's own enforcement of it would quote the rejected frame in its error; bad frames with
real patient values must still get an error naming the column and row and no value, in-process
and through the real scoring server.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from anomigan.data import load_dataset

ENCODER = "models:/anomigan-encoder-{}@champion"
TARGET = "models:/anomigan-target-{}@champion"


def _signature(uri: str):
    signature = mlflow.models.get_model_info(uri).signature
    assert signature is not None and signature.inputs is not None and signature.outputs is not None
    return signature


def _types(schema) -> dict[str, tuple[str, bool]]:
    return {c.name: (c.type.name, c.required) for c in schema.inputs}


def test_breast_signatures_name_every_column_with_its_type(breast_encoder):
    columns = list(load_dataset("breast").features.columns)
    encoder = _signature(ENCODER.format("breast"))
    assert list(_types(encoder.inputs)) == columns
    assert set(_types(encoder.inputs).values()) == {("double", True)}  # refuses missing cells
    assert _types(encoder.outputs) == _types(encoder.inputs)  # same columns and types out
    target = _signature(TARGET.format("breast"))
    assert list(_types(target.inputs)) == columns
    assert set(_types(target.inputs).values()) == {("double", False)}  # imputes missing cells
    assert {n: t for n, (t, _) in _types(target.outputs).items()} == {
        "prediction": "string",
        "proba_benign": "float",  # float32 probabilities
        "proba_malignant": "float",
    }


def test_ckd_signatures_type_categories_as_strings(ckd_encoder):
    features = load_dataset("ckd").features
    encoder = _signature(ENCODER.format("ckd"))
    types = _types(encoder.inputs)
    assert list(types) == list(features.columns)
    for name in features.columns:
        numeric = pd.api.types.is_numeric_dtype(features[name])
        assert types[name] == ("double" if numeric else "string", True), name
    assert {n: t for n, (t, _) in _types(encoder.outputs).items()} == {
        n: t for n, (t, _) in types.items()
    }
    target = _signature(TARGET.format("ckd"))
    assert {n: t for n, (t, _) in _types(target.inputs).items()} == {
        n: t for n, (t, _) in types.items()
    }
    assert not any(required for _, required in _types(target.inputs).values())


def _real_rows(n: int = 3) -> pd.DataFrame:
    return load_dataset("breast").features.iloc[20 : 20 + n].reset_index(drop=True)


def _distinct_values(frame: pd.DataFrame) -> list[str]:
    """Cell texts specific enough that finding one in a message would be a leak."""
    texts = {str(v) for v in frame.to_numpy().ravel()} | {repr(v) for v in frame.to_numpy().ravel()}
    return sorted(t for t in texts if sum(c.isdigit() for c in t) >= 4)


def _bad_frames() -> dict[str, tuple[pd.DataFrame, list[str]]]:
    """name -> (frame of real values, words the message must contain)."""
    rows = _real_rows()
    text = rows.astype({"mean texture": "object"})
    text.loc[1, "mean texture"] = f"x{rows.loc[1, 'mean texture']}"
    nan = rows.copy()
    nan.loc[2, "worst area"] = np.nan
    return {
        "missing-column": (rows.drop(columns=["mean radius"]), ["missing columns", "mean radius"]),
        "string-in-number": (text, ["column 'mean texture'", "rows [1]"]),
        "nan": (nan, ["column 'worst area'", "rows [2]"]),
    }


@pytest.mark.parametrize("case", list(_bad_frames()))
def test_bad_frame_in_process_gets_a_value_free_error(breast_encoder, case):
    frame, words = _bad_frames()[case]
    model = mlflow.pyfunc.load_model(ENCODER.format("breast"))
    assert model.metadata.get_input_schema() is not None
    with pytest.raises(Exception) as info:  # noqa: B017 - the message is what is checked
        model.predict(frame)
    message = str(info.value)
    for word in words:
        assert word in message, message
    for value in _distinct_values(frame):
        assert value not in message, (value, message)


def test_target_in_process_imputes_nan_and_refuses_text_value_free(breast_target):
    model = mlflow.pyfunc.load_model(TARGET.format("breast"))
    nan = _bad_frames()["nan"][0]
    assert len(model.predict(nan)) == len(nan)
    text = _bad_frames()["string-in-number"][0]
    with pytest.raises(Exception) as info:  # noqa: B017
        model.predict(text)
    message = str(info.value)
    assert "column 'mean texture'" in message and "rows [1]" in message
    for value in _distinct_values(text):
        assert value not in message


def test_mlflow_enforcement_alone_would_echo_the_frame(breast_encoder):
    """Why the guard exists: MLflow's own check of the same schema quotes the rejected data."""
    from mlflow.models.utils import _enforce_schema

    model = mlflow.pyfunc.load_model(ENCODER.format("breast"))
    frame = _bad_frames()["string-in-number"][0]
    with pytest.raises(Exception) as info:  # noqa: B017
        _enforce_schema(frame, model.metadata.get_input_schema())
    # the plain enforcement fails; `PyFuncModel.predict` would wrap it with `data '<frame>'`
    assert "mean texture" in str(info.value)


@pytest.mark.parametrize("case", list(_bad_frames()))
def test_bad_frame_through_the_scoring_server_is_value_free(encoder_server, case):
    frame, words = _bad_frames()[case]
    body = {"dataframe_records": json.loads(frame.to_json(orient="records"))}
    response = requests.post(
        f"{encoder_server.url}/invocations",
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    for word in words:
        assert word in response.json()["message"], response.text
    for value in _distinct_values(frame):
        assert value not in response.text
