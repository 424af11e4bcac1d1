"""The served models: MLflow pyfuncs over the codec, and the scoring server's error guard.

A pyfunc here is the whole chain a record goes through: validate -> encode -> model -> decode.
MLflow's scoring server echoes submitted values in its error bodies ("Failed to predict data
'<the whole frame>'") and returns stack traces; for patient records both are leaks. When a model
of this module is loaded inside `mlflow models serve`, it replaces the server's `invocations`
handler with `safe_invocations`, which parses and validates requests itself and answers every
failure with a value-free message (which column, which row) and the right 4xx status.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from anomigan.codec import RecordCodec, SchemaError

log = logging.getLogger("anomigan.serving")

PIP_REQUIREMENTS_FROM = (
    "mlflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
)
#: A request may carry at most this many records (env `ANOMIGAN_MAX_ROWS`); bigger files go
#: through `anomigan anonymize`, which streams them.
DEFAULT_MAX_ROWS = 100_000
#: Bodies larger than this are refused before parsing (env `ANOMIGAN_MAX_BODY_BYTES`).
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class InvalidRecords(ValueError):
    """A request's records cannot be anonymised; the message names columns/rows, never values."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def pip_requirements() -> list[str]:
    """Exact versions of what the pyfunc imports (MLflow's inference would miss keras)."""
    from importlib.metadata import version

    reqs = [f"{name}=={version(name)}" for name in PIP_REQUIREMENTS_FROM]
    return reqs + [f"anomigan=={version('anomigan')}"]


class RecordModel(mlflow.pyfunc.PythonModel, abc.ABC):
    """Base pyfunc: raw records in, validated by the codec, a DataFrame out."""

    codec: RecordCodec

    def load_context(self, context) -> None:
        self.codec = RecordCodec.load(Path(context.artifacts["model"]) / "codec.json")
        self._load(Path(context.artifacts["model"]))
        install_server_guard()

    @abc.abstractmethod
    def _load(self, folder: Path) -> None:
        """Load the subclass's network from the model's artifact folder."""

    @abc.abstractmethod
    def predict_records(self, records: pd.DataFrame) -> pd.DataFrame:
        """Validate, transform and return records; raise `InvalidRecords` for bad input."""

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.predict_records(model_input)

    def validated(self, records: pd.DataFrame) -> pd.DataFrame:
        try:
            return self.codec.validate(records)
        except SchemaError as exc:
            raise InvalidRecords(str(exc)) from None


class TargetModel(RecordModel):
    """The target classifier D2 as a pyfunc: predicted label and class probabilities."""

    def _load(self, folder: Path) -> None:
        from anomigan.target import TrainedTarget

        self.target = TrainedTarget.load(folder)

    def predict_records(self, records: pd.DataFrame) -> pd.DataFrame:
        x = self.codec.encode(self.validated(records))
        proba = self.target.predict_proba(x)
        out = pd.DataFrame(
            {f"proba_{c}": proba[:, i] for i, c in enumerate(self.target.vocabulary.classes)}
        )
        out.insert(0, "prediction", self.target.vocabulary.decode(proba.argmax(axis=1)))
        return out


def _synthetic_example(codec: RecordCodec, n: int = 2, seed: int = 0) -> pd.DataFrame:
    """An input example that is no patient's record: random points of model space, decoded."""
    z = np.random.default_rng(seed).uniform(0.2, 0.8, size=(n, codec.n_outputs))
    return codec.decode(z.astype(np.float32))


def _log_pyfunc(kind: str, folder: Path, codec: RecordCodec, example, output):
    """Log a models-from-code pyfunc (`anomigan/served/<kind>.py`) with its artifact folder."""
    from mlflow.models import infer_signature

    codec.save(folder / "codec.json")
    # Outputs only: with an input schema MLflow would enforce it itself and echo the rejected
    # frame in its error. The codec validates instead; the input columns are documented by
    # the input example and `codec.json`.
    signature = infer_signature(model_output=output)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).parent / "served" / f"{kind}.py"),
        artifacts={"model": str(folder)},
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
    )


def log_target_model(target, codec: RecordCodec):
    """Log the target pyfunc (Keras model, label vocabulary, codec) in the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "target"
        target.save(folder)
        example = _synthetic_example(codec)
        model = TargetModel()
        model.codec, model.target = codec, target
        return _log_pyfunc("target", folder, codec, example, model.predict_records(example))


# --------------------------------------------------------------------------- scoring server guard


def _max_rows() -> int:
    return int(os.environ.get("ANOMIGAN_MAX_ROWS", DEFAULT_MAX_ROWS))


def _max_body() -> int:
    return int(os.environ.get("ANOMIGAN_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def parse_request(data: bytes | str, content_type: str | None) -> pd.DataFrame:
    """Parse a scoring request into a DataFrame with value-free errors.

    Accepts MLflow's JSON protocol (`dataframe_split`, `dataframe_records`) and CSV.
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
    if mime == "text/csv":
        import io

        try:
            frame = pd.read_csv(io.StringIO(data))
        except Exception:
            raise InvalidRecords("request body is not a readable CSV table") from None
    else:
        frame = _parse_json(data)
    if len(frame) == 0:
        raise InvalidRecords("the request holds no records")
    if len(frame) > _max_rows():
        raise InvalidRecords(
            f"{len(frame)} records exceed the limit of {_max_rows()} per request; split the "
            "request, or anonymise files with `anomigan anonymize`",
            status=413,
        )
    return frame


def _parse_json(data: str) -> pd.DataFrame:
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
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
            raise InvalidRecords("'dataframe_split' must be an object with 'columns' and 'data'")
        rows = split.get("data")
        if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
            raise InvalidRecords("'dataframe_split.data' must be a list of rows (lists)")
        width = len(split["columns"])
        for i, row in enumerate(rows):
            if len(row) != width:
                raise InvalidRecords(
                    f"row {i} has {len(row)} values but 'columns' names {width} columns"
                )
        if any(not isinstance(c, str) for c in split["columns"]):
            raise InvalidRecords("'dataframe_split.columns' must be a list of column names")
        return pd.DataFrame(rows, columns=split["columns"])
    records = body["dataframe_records"]
    if not isinstance(records, list) or any(not isinstance(r, dict) for r in records):
        raise InvalidRecords("'dataframe_records' must be a list of objects (one per record)")
    return pd.DataFrame.from_records(records)


def safe_invocations(data, content_type, model, input_schema):
    """Drop-in for MLflow's `scoring_server.invocations` that never echoes request content."""
    from io import StringIO

    from mlflow.pyfunc.scoring_server import InvocationsResponse, predictions_to_json

    def error(status: int, message: str) -> InvocationsResponse:
        code = "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
        body = json.dumps({"error_code": code, "message": message})
        return InvocationsResponse(response=body, status=status, mimetype="application/json")

    try:
        frame = parse_request(data, content_type)
        predictions = model.unwrap_python_model().predict_records(frame)
    except InvalidRecords as exc:
        return error(exc.status, str(exc))
    except Exception as exc:  # never let a trace (or a value inside it) reach the client
        log.error(
            "anonymisation failed inside the server (%s); details withheld", type(exc).__name__
        )
        return error(500, "internal error while processing the request; nothing was returned")
    out = StringIO()
    predictions_to_json(predictions, out)
    return InvocationsResponse(response=out.getvalue(), status=200, mimetype="application/json")


def install_server_guard() -> bool:
    """Inside `mlflow models serve`, route /invocations through `safe_invocations`.

    The server resolves `invocations` from its module at call time, so replacing that attribute
    before the first request is enough; outside the server this does nothing.
    """
    from mlflow.pyfunc import scoring_server

    if scoring_server._SERVER_MODEL_PATH not in os.environ:
        return False
    if scoring_server.invocations is not safe_invocations:
        scoring_server.invocations = safe_invocations
    return True


class EncoderModel(RecordModel):
    """The AnomiGAN encoder as a pyfunc: raw records in, anonymised raw records out.

    Every call draws fresh randomness (the same record posted twice comes back different);
    `seed` makes one call reproducible.
    """

    def _load(self, folder: Path) -> None:
        from anomigan.gan import TrainedEncoder

        self.encoder = TrainedEncoder.load(folder)

    def predict_records(self, records: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
        x = self.codec.encode(self.validated(records))
        return self.codec.decode(self.encoder.anonymize(x, rng_seed=seed))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        seed = (params or {}).get("seed")
        return self.predict_records(model_input, seed=None if seed is None else int(seed))


def log_encoder_model(trained, codec: RecordCodec, x_example: np.ndarray):
    """Log the encoder pyfunc: weights, config, layer variances and codec in one folder.

    The input example is made of anonymised values (never a raw row), as is its output.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        trained.save(folder)
        example = codec.decode(trained.anonymize(x_example[:2], rng_seed=0))
        model = EncoderModel()
        model.codec, model.encoder = codec, trained
        return _log_pyfunc("encoder", folder, codec, example, model.predict_records(example, 1))
