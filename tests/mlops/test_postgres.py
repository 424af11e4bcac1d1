"""PostgreSQL for real: a PostgreSQL 15 server on 127.0.0.1 (the `postgres` fixture) holding
(a) the Optuna study of two tune workers, one of them SIGKILLed, and (b) the backend store of a
real `mlflow server` that `train`, the registry alias and `mlflow models serve` go through.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import requests
from optuna.trial import TrialState
from support import ScoringServer, assert_trials_land_once, free_port

from anomigan.data import load_dataset
from anomigan.mlops.tuning import KILL_AT_ENV, open_storage

BIN = Path(sys.executable).parent


def _tune(storage: str, name: str, env: dict) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "anomigan"), "tune", "--study-name", name, "--storage", storage]
    cmd += ["--n-trials", "3", "--n-workers", "2", "--no-promote", "--prune-floor", "0"]
    cmd += ["--min-steps", "20", "--max-steps", "30", "--n-records", "60"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def test_two_workers_on_postgres_land_each_trial_once_and_survive_a_killed_worker(
    postgres, breast_target, cli_env
):
    storage = postgres.create_database("optuna_workers")
    # the worker that runs trial 1 dies between creating its MLflow run and recording its id
    killed = _tune(storage, "pg", {**cli_env, KILL_AT_ENV: "run_started:1"})
    assert killed.returncode == 1, killed.stderr[-3000:]  # a worker failed: the tune says so
    assert "RuntimeError while running tune" in killed.stderr
    study = optuna.load_study(study_name="pg", storage=open_storage(storage))
    assert study.trials[1].state in (TrialState.FAIL, TrialState.RUNNING)
    owners = {t.user_attrs["owner"]["pid"] for t in study.trials if "owner" in t.user_attrs}
    assert len(owners) == 2  # both workers claimed trials from the one PostgreSQL study
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)

    resumed = _tune(storage, "pg", cli_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"trials_run: {3 - finished}" in resumed.stdout
    study = optuna.load_study(study_name="pg", storage=open_storage(storage))
    assert_trials_land_once(study, 3)
    assert study.trials[1].state == TrialState.FAIL
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == 1)
    assert retry.params == study.trials[1].params  # the dead trial's point is rerun once
    # the study really lives in PostgreSQL
    assert postgres.query("optuna_workers", "select count(*) from trials")[0][0] == len(
        study.trials
    )


class TrackingServer:
    """`mlflow server` on 127.0.0.1 with a PostgreSQL backend store and a local artifact root
    it serves itself (clients upload and download through HTTP)."""

    def __init__(self, backend: str, artifacts: Path, env: dict, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", backend]
        cmd += ["--artifacts-destination", str(artifacts), "--serve-artifacts"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=10).status_code == 200:
                    return
            except requests.RequestException:  # not up yet, or slow on a loaded machine
                pass
            time.sleep(0.5)
        raise TimeoutError(f"mlflow server did not answer: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        self._out.close()


@pytest.fixture(scope="module")
def tracking_server(postgres, cli_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracking-server")
    backend = postgres.create_database("mlflow")
    server = TrackingServer(backend, folder / "artifacts", cli_env, folder / "server.log")
    try:
        server.wait()
        yield server, folder
    finally:
        server.stop()


def test_train_register_and_serve_through_a_tracking_server_on_postgres(
    tracking_server, postgres, cli_env, tmp_path
):
    server, folder = tracking_server
    env = {**cli_env, "MLFLOW_TRACKING_URI": server.url}
    for stale in ("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(stale, None)  # ids of the session's SQLite store mean nothing to the server
    for cmd in (
        ["train-target", "--dataset", "breast", "--epochs", "5"],
        ["train", "--dataset", "breast", "--steps", "60", "--n-records", "60"],
    ):
        out = subprocess.run(
            [str(BIN / "anomigan"), "--debug", *cmd],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr[-3000:]
    assert not list(tmp_path.iterdir())  # nothing went to a local store: all through HTTP

    # the registry and its alias live in PostgreSQL, the artifacts under the server's root
    aliases = postgres.query("mlflow", "select name, alias from registered_model_aliases")
    assert ("anomigan-encoder-breast", "champion") in aliases
    assert postgres.query("mlflow", "select count(*) from runs")[0][0] >= 2
    assert any(p.name == "MLmodel" for p in (folder / "artifacts").rglob("MLmodel"))

    records = json.loads(load_dataset("breast").features.iloc[:3].to_json(orient="split"))
    body = {"dataframe_split": {"columns": records["columns"], "data": records["data"]}}
    log = tmp_path.parent / f"{tmp_path.name}-serve.log"
    with ScoringServer("models:/anomigan-encoder-breast@champion", env, log) as scoring:
        response = requests.post(f"{scoring.url}/invocations", json=body, timeout=60)
    assert response.status_code == 200, response.text[:300]
    predictions = response.json()["predictions"]
    assert len(predictions) == 3 and set(predictions[0]) == set(records["columns"])
