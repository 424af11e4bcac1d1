"""MLflow plumbing: where runs go, what may be logged, and the model registry.

Everything that touches MLflow lives here so the method modules never do. The one rule this
module enforces: only configuration, aggregate figures and model files are logged, never a
patient row (params are checked to be scalars; input examples are synthetic).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.exceptions import MlflowException

CHAMPION = "champion"
DEFAULT_EXPERIMENT = "anomigan"


def default_tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, else the embedded SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure(tracking_uri: str | None = None, registry_uri: str | None = None) -> str:
    """Point MLflow at the tracking store (and the registry at the same place unless told)."""
    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    return uri


def target_model_name(dataset: str) -> str:
    return f"anomigan-target-{dataset}"


def encoder_model_name(dataset: str) -> str:
    return f"anomigan-encoder-{dataset}"


@contextmanager
def run(
    run_name: str, experiment: str | None = None, nested: bool = False, tags: Mapping | None = None
) -> Iterator[mlflow.ActiveRun]:
    """Start (or, under `mlflow run`, resume) a run; inside an active run it nests.

    A failure inside the block marks the run FAILED, so a broken job is visible in the UI.
    """
    nested = nested or mlflow.active_run() is not None
    if (
        not nested
        and "MLFLOW_RUN_ID" not in os.environ
        and "MLFLOW_EXPERIMENT_ID" not in os.environ
    ):
        mlflow.set_experiment(
            experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
        )
    with mlflow.start_run(run_name=run_name, nested=nested, tags=dict(tags or {})) as active:
        yield active


def log_params(params: Mapping[str, Any]) -> None:
    """Log configuration values; anything that is not a short scalar is refused.

    A guard, not a formality: a record, array or frame passed here by mistake would put patient
    data into the tracking store, where it can never be scrubbed from every backup.

    Keys the active run already holds are skipped: under `mlflow run` the project's -P values
    are logged first (e.g. steps "4000.0") and MLflow refuses to change a param. Jobs log what
    they resolved under their own names (e.g. `label_column` next to the user's `label`).
    """
    active = mlflow.active_run()
    logged = MlflowClient().get_run(active.info.run_id).data.params if active else {}
    clean: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            value = ""
        if not isinstance(value, str | int | float | bool) or len(str(value)) > 250:
            raise TypeError(f"param {key!r} is not a short scalar; refusing to log it")
        if key not in logged:
            clean[key] = value
    if clean:
        mlflow.log_params(clean)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_figure(fig, name: str) -> None:
    """Log a matplotlib figure as a PNG artifact and close it."""
    mlflow.log_figure(fig, name)
    plt.close(fig)


def log_dir(directory: str | Path, artifact_path: str | None = None) -> None:
    mlflow.log_artifacts(str(directory), artifact_path)


def register(model_uri: str, name: str, tags: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Register `model_uri` (already fully logged) as a new version of `name`.

    The first version of a model gets the `champion` alias; later versions leave it where it
    is until tuning or the user moves it. Returns (version, became_champion).
    """
    version = mlflow.register_model(model_uri, name, tags=dict(tags or {})).version
    client = MlflowClient()
    try:
        client.get_model_version_by_alias(name, CHAMPION)
        return str(version), False
    except MlflowException:
        client.set_registered_model_alias(name, CHAMPION, str(version))
        return str(version), True


def set_champion(name: str, version: str | int) -> None:
    """Move the `champion` alias to an existing version (checked first, with a clear error)."""
    client = MlflowClient()
    try:
        client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise ValueError(f"model {name!r} has no version {version}") from exc
    client.set_registered_model_alias(name, CHAMPION, str(version))


def model_exists(uri: str) -> bool:
    """True when a `models:/name@alias` or `models:/name/version` URI resolves."""
    name, _, ref = uri.removeprefix("models:/").partition("@")
    client = MlflowClient()
    try:
        if ref:
            client.get_model_version_by_alias(name, ref)
        else:
            name, _, version = name.partition("/")
            client.get_model_version(name, version)
        return True
    except MlflowException:
        return False


def _scratch_folder() -> Path:
    """A fresh temporary folder for downloads, removed when the process exits: callers load what
    they need from it into memory, so nothing is left behind in the temporary directory."""
    folder = Path(tempfile.mkdtemp(prefix="anomigan-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def download_model_artifacts(model_uri: str, subdir: str) -> Path:
    """Download a registered pyfunc's artifacts and return the folder holding `subdir`."""
    dst = _scratch_folder()
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    found = next((p for p in local.rglob(subdir) if p.is_dir()), None)
    if found is None:
        raise FileNotFoundError(f"{model_uri} has no artifact folder {subdir!r}")
    return found


def tracking_uri() -> str:
    """The tracking URI in use (after `configure`)."""
    return mlflow.get_tracking_uri()


def set_tags(tags: Mapping[str, Any]) -> None:
    """Tag the active run; values are stringified and must be short (no records in tags)."""
    clean = {k: str(v) for k, v in tags.items()}
    for key, value in clean.items():
        if len(value) > 500:
            raise TypeError(f"tag {key!r} is too long; refusing to log it")
    mlflow.set_tags(clean)


def run_status(run_id: str) -> str | None:
    """RUNNING / FINISHED / FAILED / KILLED, or None when the run does not exist."""
    try:
        return MlflowClient().get_run(run_id).info.status
    except MlflowException:
        return None


def mark_killed(run_id: str) -> None:
    """End a run whose process died (SIGKILL leaves it RUNNING forever) as KILLED."""
    MlflowClient().set_terminated(run_id, "KILLED")


def end_run(run_id: str, status: str) -> None:
    """End a run left RUNNING by a dead process with `status` (FINISHED, KILLED, FAILED)."""
    MlflowClient().set_terminated(run_id, status)


def running_runs_tagged(key: str, value: str) -> list:
    """RUNNING runs of any active experiment with tag `key` = `value` (how resume finds runs a
    killed process had no time to record anywhere else)."""
    quote = '"' if "'" in value else "'"
    if quote in value:
        raise ValueError(f"tag value for {key!r} cannot hold both kinds of quote")
    client = MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not ids:
        return []
    return client.search_runs(
        ids,
        filter_string=f"tags.{key} = {quote}{value}{quote} and attributes.status = 'RUNNING'",
        max_results=10_000,
    )


def child_runs(parent_run_id: str) -> list:
    """Runs nested under `parent_run_id` (any experiment), oldest first."""
    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=10_000,
    )


def registered_model_exists(name: str) -> bool:
    try:
        MlflowClient().get_registered_model(name)
        return True
    except MlflowException:
        return False


def download_run_artifacts(run_id: str, path: str) -> Path:
    """Download the folder `path` of a run's artifacts to a fresh temporary folder."""
    dst = _scratch_folder()
    return Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst))
    )


def registered_models(prefix: str = "anomigan-") -> list[tuple[str, str, str | None]]:
    """(name, latest version, champion version) of every registered model named prefix*."""
    client = MlflowClient()
    out = []
    for model in client.search_registered_models(filter_string=f"name LIKE '{prefix}%'"):
        versions = client.search_model_versions(f"name='{model.name}'")
        latest = max((int(v.version) for v in versions), default=0)
        out.append((model.name, str(latest), champion_version(model.name)))
    return sorted(out)


def champion_version(name: str) -> str | None:
    """The version holding the `champion` alias of `name`, or None."""
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


#: the MLflow input context of each split
SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_splits(name: str, splits: Mapping[str, Any], label: str) -> dict[str, str]:
    """Log each split as an MLflow dataset input (name, digest, schema, row count, context), so
    the UI's Dataset column shows what a run saw. Only the digest and the schema reach the
    store: `mlflow.data.from_pandas` keeps the frame in memory, `log_input` writes metadata.

    `splits` maps "train" / "val" / "test" to `anomigan.data.Dataset` objects; returns each
    split's digest."""
    digests = {}
    for key, ds in splits.items():
        frame = pd.concat([ds.features, ds.labels.rename(label)], axis=1)
        dataset = from_pandas(frame, name=f"{name}-{key}", targets=label)
        mlflow.log_input(dataset, context=SPLIT_CONTEXTS[key])
        digests[key] = dataset.digest
    return digests


def log_text(text: str, artifact_file: str) -> str:
    """Log a text artifact of the active run; returns its artifact URI."""
    mlflow.log_text(text, artifact_file)
    return mlflow.get_artifact_uri(artifact_file)


def describe_version(name: str, version: str | int, text: str) -> None:
    """The registry page's description of a model version (e.g. its model card)."""
    MlflowClient().update_model_version(name, str(version), description=text)
