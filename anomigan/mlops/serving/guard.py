"""The guards that keep MLflow from quoting records: its scoring server and schema check.

MLflow's scoring server echoes submitted values in its error bodies ("Failed to predict data
'<the whole frame>'") and returns stack traces; for patient records both are leaks. When a model
of this package is loaded inside `mlflow models serve`, it replaces the server's `invocations`
handler with `safe_invocations`, which parses and validates requests itself and answers every
failure with a value-free message (which column, which row) and the right 4xx status.

MLflow's own enforcement of the input schema quotes the rejected frame in its error
("Failed to enforce schema of data '<frame>'"); `install_schema_guard` leaves the check of
these models' records to the codec, in-process, in the scoring server and in Spark alike.
"""

from __future__ import annotations

import json
import logging
import os
from io import StringIO

import mlflow.pyfunc as pyfunc
import pandas as pd
from mlflow.models.utils import _enforce_params_schema
from mlflow.pyfunc import scoring_server
from mlflow.pyfunc.scoring_server import InvocationsResponse, predictions_to_json
from mlflow.types import ColSpec, Schema, TensorSpec

from anomigan.data.codec import RecordCodec
from anomigan.mlops.serving.requests import InvalidRecords, parse_invocation

log = logging.getLogger("anomigan.mlops.serving")


def input_schema(codec: RecordCodec, optional: bool = False) -> Schema:
    """MLflow input schema of raw records: double / long / boolean / string per column.

    `optional` marks every column as not required: MLflow's way of saying that a model
    accepts missing values there (the codec imputes them).
    """
    codec._check_fitted()
    cols: list[ColSpec | TensorSpec] = []
    for s in codec.specs:
        if s.kind == "categorical":
            kind = "string"
        elif s.dtype == "bool":
            kind = "boolean"
        elif pd.api.types.is_integer_dtype(pd.api.types.pandas_dtype(s.dtype)):
            kind = "long"
        else:
            kind = "double"
        cols.append(ColSpec(kind, s.name, required=not optional))
    return Schema(cols)


def safe_invocations(data, content_type, model, input_schema):
    """Drop-in for MLflow's `scoring_server.invocations` that never echoes request content."""

    def error(status: int, message: str) -> InvocationsResponse:
        code = "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
        body = json.dumps({"error_code": code, "message": message})
        return InvocationsResponse(response=body, status=status, mimetype="application/json")

    try:
        python_model = model.unwrap_python_model()
        all_numeric = all(s.kind == "numeric" for s in python_model.codec.specs)
        frame, params = parse_invocation(data, content_type, all_numeric)
        predictions = python_model.predict_records(frame, **python_model.request_params(params))
    except InvalidRecords as exc:
        return error(exc.status, str(exc))
    except Exception as exc:  # never let a trace (or a value inside it) reach the client
        log.error(
            "anonymisation failed inside the server (%s); details withheld", type(exc).__name__
        )
        return error(500, "internal error while processing the request; nothing was returned")
    if isinstance(predictions, pd.DataFrame):
        # MLflow's format ({"predictions": [record, ...]}) from pandas' C encoder, much
        # faster than json.dump over to_dict records
        decimals = python_model.json_decimals
        body = '{"predictions": ' + predictions.to_json(orient="records", double_precision=decimals)
        return InvocationsResponse(response=body + "}", status=200, mimetype="application/json")
    out = StringIO()
    predictions_to_json(predictions, out)
    return InvocationsResponse(response=out.getvalue(), status=200, mimetype="application/json")


#: JSON of the input schemas of this module's models loaded in this process.
_RECORD_SCHEMAS: set[str] = set()


def install_schema_guard(schema) -> None:
    """Leave the check of records sent to this module's models to the codec, not to MLflow.

    `PyFuncModel.predict` enforces the input schema before the model runs, and its failure
    message quotes the whole frame (`Failed to enforce schema of data '<frame>'`); it also
    refuses what the codec accepts (3.0 in a `long` column, a null in an optional one) and
    names no row. For a model whose signature inputs are `schema`, the records go to the
    model as they are (params are still enforced) and its `predict` validates them with the
    codec, whose errors name the column and row and never a value. Patched once per process
    (in-process loads, the scoring server and Spark's Python workers all load through
    `load_context`); models of other schemas keep MLflow's own check.
    """
    _RECORD_SCHEMAS.add(schema.to_json())
    original = pyfunc._validate_prediction_input
    if getattr(original, "anomigan_guard", False):
        return

    def validate(data, params, input_schema, params_schema, flavor=None):  # noqa: ANN001, ANN202
        if input_schema is not None and input_schema.to_json() in _RECORD_SCHEMAS:
            return data, _enforce_params_schema(params, params_schema)
        return original(data, params, input_schema, params_schema, flavor)

    validate.anomigan_guard = True  # type: ignore[attr-defined]
    pyfunc._validate_prediction_input = validate


def install_server_guard() -> bool:
    """Inside `mlflow models serve`, route /invocations through `safe_invocations`.

    The server resolves `invocations` from its module at call time, so replacing that attribute
    before the first request is enough; outside the server this does nothing.
    """
    if scoring_server._SERVER_MODEL_PATH not in os.environ:
        return False
    if scoring_server.invocations is not safe_invocations:
        scoring_server.invocations = safe_invocations
    return True
