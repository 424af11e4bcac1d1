"""The served models: MLflow pyfuncs over the codec, and the scoring server's error guard.

A pyfunc here is the whole chain a record goes through: validate -> encode -> model -> decode.
MLflow's scoring server echoes submitted values in its error bodies ("Failed to predict data
'<the whole frame>'") and returns stack traces; for patient records both are leaks. When a model
of this module is loaded inside `mlflow models serve`, it replaces the server's `invocations`
handler with `safe_invocations`, which parses and validates requests itself and answers every
failure with a value-free message (which column, which row) and the right 4xx status.

Every logged pyfunc carries a full signature (input columns and types from the codec, outputs
inferred from a synthetic prediction), so the UI, `spark_udf` and callers know what to send.
MLflow's own enforcement of that input schema quotes the rejected frame in its error
("Failed to enforce schema of data '<frame>'"); `install_schema_guard` leaves the check of
these models' records to the codec, in-process, in the scoring server and in Spark alike.
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

from anomigan.data.codec import RecordCodec, SchemaError

log = logging.getLogger("anomigan.mlops.serving")

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


def pip_requirements() -> list[str]:
    """Exact versions of what the pyfunc imports (MLflow's inference would miss keras)."""
    from importlib.metadata import version

    reqs = [f"{name}=={version(name)}" for name in PIP_REQUIREMENTS_FROM]
    return reqs + [f"anomigan=={version('anomigan')}"]


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


class RecordModel(mlflow.pyfunc.PythonModel, abc.ABC):
    """Base pyfunc: raw records in, validated by the codec, a DataFrame out."""

    codec: RecordCodec
    #: Names a request may pass in its JSON `params` object.
    PARAMS: frozenset[str] = frozenset()
    #: Decimals of floats in JSON answers (pandas' writer takes a fixed count, at most 15).
    json_decimals: int = 15
    #: Whether the model accepts missing cells (it imputes them): the signature then marks its
    #: input columns optional, MLflow's way of saying so.
    OPTIONAL_INPUTS: bool = False

    def load_context(self, context) -> None:
        self.codec = RecordCodec.load(Path(context.artifacts["model"]) / "codec.json")
        self._load(Path(context.artifacts["model"]))
        install_schema_guard(self.input_schema())
        install_server_guard()

    def input_schema(self):
        """The signature's inputs: one column per raw column, typed by the codec."""
        return self.codec.input_schema(optional=self.OPTIONAL_INPUTS)

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

    def request_params(self, params: dict) -> dict:
        """Check a request's `params` against `PARAMS`; names are not echoed (they are input)."""
        if not params:
            return {}
        if not set(params) <= self.PARAMS:
            accepted = sorted(self.PARAMS)
            raise InvalidRecords(
                f"unsupported entry in 'params': this model accepts {accepted}"
                if accepted
                else "this model accepts no 'params'"
            )
        return dict(params)


class TargetModel(RecordModel):
    """The target classifier D2 as a pyfunc: predicted label and class probabilities.

    Missing cells are imputed by the codec, so its input columns are optional."""

    OPTIONAL_INPUTS = True

    def _load(self, folder: Path) -> None:
        from anomigan.method.target import TrainedTarget

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


def _log_pyfunc(kind: str, folder: Path, model: RecordModel, example, output):
    """Log a models-from-code pyfunc (`anomigan/served/<kind>.py`) with its artifact folder
    and a full signature: the codec's input columns, the outputs of a synthetic prediction."""
    from mlflow.models import ModelSignature, infer_signature

    model.codec.save(folder / "codec.json")
    # MLflow validates the input example against the schema while logging: no guard needed,
    # since the example is the codec's own decoded output.
    signature = ModelSignature(
        inputs=model.input_schema(), outputs=infer_signature(model_output=output).outputs
    )
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).parents[1] / "served" / f"{kind}.py"),
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
        return _log_pyfunc("target", folder, model, example, model.predict_records(example))


# --------------------------------------------------------------------------- scoring server guard


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
        import io

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
        if all_numeric and rows:  # one numpy conversion, about 10x faster than pandas'
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


def safe_invocations(data, content_type, model, input_schema):
    """Drop-in for MLflow's `scoring_server.invocations` that never echoes request content."""
    from io import StringIO

    from mlflow.pyfunc.scoring_server import InvocationsResponse, predictions_to_json

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
        # MLflow's format ({"predictions": [record, ...]}) from pandas' C encoder: about 10x
        # faster than json.dump over to_dict records (1 ms for one record in pandas 3)
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
    import mlflow.pyfunc as pyfunc
    from mlflow.models.utils import _enforce_params_schema

    _RECORD_SCHEMAS.add(schema.to_json())
    original = pyfunc._validate_prediction_input
    if getattr(original, "anomigan_guard", False):
        return

    def validate(data, params, input_schema, params_schema, flavor=None):  # noqa: ANN001, ANN202
        if input_schema is not None and input_schema.to_json() in _RECORD_SCHEMAS:
            return data, _enforce_params_schema(params, params_schema)
        return original(data, params, input_schema, params_schema, flavor)

    validate.anomigan_guard = True
    pyfunc._validate_prediction_input = validate


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
    `seed` makes one call reproducible. Missing cells are refused unless imputation is allowed
    (`allow_missing`, env `ANOMIGAN_ALLOW_MISSING`): an imputed cell would come back looking
    like a real, anonymised value.
    """

    PARAMS = frozenset({"seed"})

    @property
    def json_decimals(self) -> int:
        """Enough decimals for every column `decode` rounds, and no more, so 17.99 is written
        17.99 and not 17.989999999999998; 15 if some column is not rounded."""
        decimals = [0 if s.integer else s.decimals for s in self.codec.specs if s.kind == "numeric"]
        return 15 if not decimals or min(decimals) < 0 else max(1, *decimals)

    def _load(self, folder: Path) -> None:
        from anomigan.method.anonymizers import AnomiGANAnonymizer
        from anomigan.method.gan import TrainedEncoder
        from anomigan.method.target import TrainedTarget

        settings = json.loads((folder / "anonymizer.json").read_text())
        target = TrainedTarget.load(folder / "target")
        self.anonymizer = AnomiGANAnonymizer(
            TrainedEncoder.load(folder), predict=target.predict, **settings
        )

    def request_params(self, params: dict) -> dict:
        params = super().request_params(params)
        if params.get("seed") is not None and not _env_flag(ALLOW_SEED_ENV):
            raise InvalidRecords(
                f"params.seed is disabled on this server (set {ALLOW_SEED_ENV}=1 to allow it; "
                "anyone who knows a seed can re-run candidate records and link the outputs)"
            )
        return params

    def check_complete(self, records: pd.DataFrame, allow_missing: bool | None = None) -> None:
        """Refuse records with missing cells (first column in schema order) unless allowed.

        Called after the codec accepted `records`, so their columns are the codec's.
        """
        from anomigan.data.codec import _rows

        if allow_missing is None:
            allow_missing = _env_flag(ALLOW_MISSING_ENV)
        if allow_missing:
            return
        missing = records.isna().to_numpy()
        if not missing.any():
            return
        names = [str(c) for c in records.columns]
        flagged = {names[j] for j in np.flatnonzero(missing.any(axis=0))}
        name = next(c for c in self.codec.columns if c in flagged)
        raise InvalidRecords(
            f"column '{name}' has missing (null or empty) values in rows "
            f"{_rows(records.index, missing[:, names.index(name)])}; send complete records "
            f"(imputation is off: {ALLOW_MISSING_ENV} / --allow-missing)"
        )

    def predict_records(
        self, records: pd.DataFrame, seed: int | None = None, allow_missing: bool | None = None
    ) -> pd.DataFrame:
        seed = check_seed(seed)
        try:
            x = self.codec.encode(records)  # validates: columns, types, categories
        except SchemaError as exc:
            raise InvalidRecords(str(exc)) from None
        self.check_complete(records, allow_missing)
        return self.codec.decode(self.anonymizer.anonymize(x, seed=seed))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.predict_records(model_input, seed=(params or {}).get("seed"))


def log_encoder_model(anonymizer, target, codec: RecordCodec, x_example: np.ndarray):
    """Log the encoder pyfunc: weights, config, layer variances, the guard's target and the
    codec in one folder.

    The input example is made of anonymised values (never a raw row), as is its output.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        anonymizer.trained.save(folder)
        target.save(folder / "target")
        settings = {
            "max_resample": anonymizer.max_resample,
            "n_noisy_layers": anonymizer.n_noisy_layers,
        }
        (folder / "anonymizer.json").write_text(json.dumps(settings))
        example = codec.decode(anonymizer.anonymize(x_example[:2], seed=0))
        model = EncoderModel()
        model.codec, model.anonymizer = codec, anonymizer
        return _log_pyfunc("encoder", folder, model, example, model.predict_records(example, 1))
