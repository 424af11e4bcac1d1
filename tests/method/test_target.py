"""The target classifier job: tracked params and metrics, the registered pyfunc, its alias."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from anomigan.data import load_dataset
from anomigan.method.target import LabelVocabulary, TargetConfig, TrainedTarget, train_target
from anomigan.mlops import tracking
from anomigan.mlops.jobs import prepare


def test_target_job_logs_metrics_and_registers_champion(breast_target):
    run = MlflowClient().get_run(breast_target["run_id"])
    assert run.data.params["dataset"] == "breast"
    assert run.data.params["split_seed"] == "0"
    assert run.data.params["n_train"] == "455" and run.data.params["n_test"] == "57"
    assert run.data.params["n_val"] == "57"
    assert run.data.metrics["test_accuracy"] >= 0.9
    assert run.data.metrics["test_auc"] >= 0.95
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "preprocessing"} <= artifacts
    version = MlflowClient().get_model_version_by_alias("anomigan-target-breast", "champion")
    assert version.run_id == run.info.run_id


def test_registered_target_predicts_raw_records_in_a_fresh_load(breast_target):
    model = mlflow.pyfunc.load_model("models:/anomigan-target-breast@champion")
    ds = load_dataset("breast")
    out = model.predict(ds.features.iloc[:20])
    assert list(out.columns) == ["prediction", "proba_benign", "proba_malignant"]
    assert set(out["prediction"]) <= {"benign", "malignant"}
    assert np.allclose(out[["proba_benign", "proba_malignant"]].sum(axis=1), 1.0, atol=1e-5)
    accuracy = (out["prediction"].to_numpy() == ds.labels.iloc[:20].to_numpy()).mean()
    assert accuracy >= 0.8


def test_second_version_leaves_champion_alone(breast_target):
    from anomigan.mlops.jobs import train_target_job

    second = train_target_job("breast", epochs=2)
    assert second["version"] != breast_target["version"]
    assert second["champion"] is False
    champion = MlflowClient().get_model_version_by_alias("anomigan-target-breast", "champion")
    assert str(champion.version) == breast_target["version"]
    tracking.set_champion("anomigan-target-breast", second["version"])
    champion = MlflowClient().get_model_version_by_alias("anomigan-target-breast", "champion")
    assert str(champion.version) == second["version"]
    tracking.set_champion("anomigan-target-breast", breast_target["version"])


def test_target_training_is_seeded():
    prep = prepare("breast", None)
    vocab = LabelVocabulary.fit(prep.dataset.labels)
    y = vocab.encode(prep.train.labels)
    config = TargetConfig(epochs=3, seed=7)
    a = TrainedTarget(train_target(prep.x_train, y, 2, config), vocab, config)
    b = TrainedTarget(train_target(prep.x_train, y, 2, config), vocab, config)
    assert np.allclose(a.predict_proba(prep.x_test), b.predict_proba(prep.x_test), atol=1e-6)


def test_label_vocabulary_round_trip():
    vocab = LabelVocabulary.fit(pd.Series(["ckd", "notckd", "ckd"]))
    assert vocab.classes == ["ckd", "notckd"]
    assert vocab.decode(vocab.encode(["notckd", "ckd"])) == ["notckd", "ckd"]


def test_runs_log_their_splits_as_datasets_without_rows(breast_target) -> None:
    """The UI's Dataset column: train / validation / test with digest, schema and row count."""
    import json

    import mlflow

    run = mlflow.get_run(breast_target["run_id"])
    inputs = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "test"}
    rows = {k: json.loads(d.profile)["num_rows"] for k, d in inputs.items()}
    assert rows == {"training": 455, "validation": 57, "test": 57}
    assert inputs["training"].name == "breast-train" and len(inputs["training"].digest) >= 8
    columns = [c["name"] for c in json.loads(inputs["test"].schema)["mlflow_colspec"]]
    assert "mean radius" in columns and "diagnosis" in columns
