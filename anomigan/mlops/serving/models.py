"""The served models: MLflow pyfuncs over the codec, logged as models from code.

A pyfunc here is the whole chain a record goes through: validate -> encode -> model -> decode.
Every logged pyfunc carries a full signature (input columns and types from the codec, outputs
inferred from a synthetic prediction), so the UI, `spark_udf` and callers know what to send.
Loading one installs the guards of `anomigan.mlops.serving.guard`.
"""

from __future__ import annotations

import abc
import json
import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel

from anomigan.data.codec import RecordCodec, SchemaError
from anomigan.data.schema import row_labels
from anomigan.method.anonymizers import AnomiGANAnonymizer
from anomigan.method.gan import TrainedEncoder
from anomigan.method.target import TrainedTarget
from anomigan.mlops.serving.guard import input_schema, install_schema_guard, install_server_guard
from anomigan.mlops.serving.requests import (
    ALLOW_MISSING_ENV,
    ALLOW_SEED_ENV,
    InvalidRecords,
    _env_flag,
    check_seed,
)

#: where the models-from-code entry files live (`anomigan/served/<kind>.py`)
SERVED = Path(__file__).parents[2] / "served"

PIP_REQUIREMENTS_FROM = (
    "mlflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
)


def pip_requirements() -> list[str]:
    """Exact versions of what the pyfunc imports (MLflow's inference would miss keras)."""

    reqs = [f"{name}=={version(name)}" for name in PIP_REQUIREMENTS_FROM]
    return reqs + [f"anomigan=={version('anomigan')}"]


class RecordModel(PythonModel, abc.ABC):
    """Base pyfunc: raw records in, validated by the codec, a DataFrame out."""

    codec: RecordCodec
    #: Names a request may pass in its JSON `params` object.
    PARAMS: frozenset[str] = frozenset()
    #: Whether the model accepts missing cells (it imputes them): the signature then marks its
    #: input columns optional, MLflow's way of saying so.
    OPTIONAL_INPUTS: bool = False

    @property
    def json_decimals(self) -> int:
        """Decimals of floats in JSON answers (pandas' writer takes a fixed count, at most 15)."""
        return 15

    def load_context(self, context) -> None:
        self.codec = RecordCodec.load(Path(context.artifacts["model"]) / "codec.json")
        self._load(Path(context.artifacts["model"]))
        install_schema_guard(self.input_schema())
        install_server_guard()

    def input_schema(self):
        """The signature's inputs: one column per raw column, typed by the codec."""
        return input_schema(self.codec, optional=self.OPTIONAL_INPUTS)

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

    model.codec.save(folder / "codec.json")
    # MLflow validates the input example against the schema while logging: no guard needed,
    # since the example is the codec's own decoded output.
    signature = ModelSignature(
        inputs=model.input_schema(), outputs=infer_signature(model_output=output).outputs
    )
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(SERVED / f"{kind}.py"),
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
        settings = json.loads((folder / "anonymizer.json").read_text())
        target = TrainedTarget.load(folder / "target")
        self.anonymizer = AnomiGANAnonymizer(
            TrainedEncoder.load(folder, target.predict_proba), predict=target.predict, **settings
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
            f"{row_labels(records.index, missing[:, names.index(name)])}; send complete records "
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
