"""Shared fixtures: one temporary SQLite MLflow store for the whole test session.

Tests run real MLflow, real Keras and the real scoring server; nothing is mocked. Models that
many tests need (the breast target, a briefly trained encoder) are trained once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory) -> Path:
    """Point MLflow at a fresh SQLite store and run the session from its folder."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.pop("MLFLOW_RUN_ID", None)
    old = Path.cwd()
    os.chdir(root)  # artifacts of the default experiment land under ./mlruns here
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield root
    os.chdir(old)


@pytest.fixture(scope="session")
def cli_env(mlflow_store) -> dict[str, str]:
    """Environment for subprocesses: the session store and the venv's bin first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="session")
def breast_target(mlflow_store) -> dict:
    """The breast target classifier, trained (few epochs) and registered once per session."""
    from anomigan.mlops import tracking
    from anomigan.mlops.jobs import train_target_job

    tracking.configure()
    return train_target_job("breast", epochs=40)


def _numeric_tokens(text: str) -> set[str]:
    import re

    return {t.lstrip("+") for t in re.findall(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?|[-+]?\d+", text)}


def _distinctive(value) -> str | None:
    """A cell as it would be written to JSON/CSV, if it is specific enough to fingerprint a row."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    digits = sum(c.isdigit() for c in text.lstrip("-0."))
    return text if digits >= 3 else None


def find_leaked_rows(root: Path, frame) -> list[str]:
    """Scan every text file and the SQLite store under `root` for raw rows of `frame`.

    A row counts as leaked from a file when at least half of its distinctive values (three or
    more significant digits) appear there. Column aggregates (one min or max per column) in
    the codec never reach that share for any single row.
    """
    import sqlite3

    texts: dict[str, str] = {}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".db":
            con = sqlite3.connect(path)
            rows = []
            for (table,) in con.execute("select name from sqlite_master where type='table'"):
                rows += [" ".join(map(str, r)) for r in con.execute(f"select * from [{table}]")]
            con.close()
            texts[str(path)] = "\n".join(rows)
            continue
        try:
            texts[str(path)] = path.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary weights: no row is stored in a network's parameters as text
    tokens = {name: _numeric_tokens(text) for name, text in texts.items()}
    leaks = []
    numeric = frame.select_dtypes("number")
    for i, row in enumerate(numeric.itertuples(index=False)):
        cells = {c for c in (_distinctive(v) for v in row) if c is not None}
        if len(cells) < 4:
            continue
        for name, found in tokens.items():
            if len(cells & found) >= len(cells) / 2:
                leaks.append(f"row {i} in {name}")
    return leaks


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScoringServer:
    """`mlflow models serve` on 127.0.0.1 and a free port, stopped by its process id."""

    def __init__(self, model_uri: str, env: dict[str, str], log_path: Path):
        import subprocess

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [
            str(Path(sys.executable).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-w",
            "1",
        ]
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, timeout: float = 120) -> None:
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"no /ping answer in {timeout} s: {self.log_path.read_text()[-2000:]}")

    def __enter__(self) -> ScoringServer:
        try:
            self.wait()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, TimeoutError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


@pytest.fixture(scope="session")
def breast_encoder(breast_target) -> dict:
    """A breast encoder, briefly trained (200 steps) and registered once per session."""
    from anomigan.mlops.jobs import train_job

    return train_job("breast", steps=200)


@pytest.fixture(scope="session")
def encoder_server(breast_encoder, cli_env, tmp_path_factory):
    """The breast encoder behind `mlflow models serve`, with a small row limit (5,000) and
    request seeds allowed, so the 413 and seed paths are cheap to test."""
    env = {**cli_env, "ANOMIGAN_MAX_ROWS": "5000", "ANOMIGAN_ALLOW_SEED": "1"}
    log = tmp_path_factory.mktemp("serve") / "encoder.log"
    uri = f"models:/anomigan-encoder-breast/{breast_encoder['version']}"  # others move @champion
    with ScoringServer(uri, env, log) as server:
        yield server


#: the session encoders and the registered model whose `@champion` each test expects them to be
SESSION_ENCODERS = {
    "breast_encoder": "anomigan-encoder-breast",
    "ckd_encoder": "anomigan-encoder-ckd",
}


@pytest.fixture(autouse=True)
def champions_are_the_session_encoders(request):
    """Each test builds the registry state it needs: tuning and the CLI register encoders and
    move `@champion` too, so a test that uses a session encoder points the alias at it first
    (in any test order)."""
    from anomigan.mlops import tracking

    for fixture, name in SESSION_ENCODERS.items():
        if fixture in request.fixturenames:
            tracking.set_champion(name, request.getfixturevalue(fixture)["version"])


@pytest.fixture(scope="session")
def target_server(breast_target, cli_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "target.log"
    with ScoringServer("models:/anomigan-target-breast@champion", cli_env, log) as server:
        yield server


@pytest.fixture(scope="session")
def quick_evaluation(breast_target) -> dict:
    """A quick-mode `evaluate` run on breast (real training, few settings), once per session."""
    from anomigan.mlops.jobs import evaluate_job

    return evaluate_job("breast", quick=True)


@pytest.fixture(scope="session")
def ckd_encoder(mlflow_store) -> dict:
    """A ckd encoder (numeric and categorical columns, missing values), briefly trained
    (200 steps, its target 20 epochs) and registered once per session."""
    from anomigan.mlops import tracking
    from anomigan.mlops.jobs import train_job, train_target_job

    tracking.configure()
    train_target_job("ckd", epochs=20)
    return train_job("ckd", steps=200)


def assert_trials_land_once(study, n_trials: int) -> dict[int, object]:
    """The kill/resume contract, checked on the study and the tracking store: `n_trials`
    finished trials and none RUNNING; each finished trial has exactly one MLflow run and it is
    FINISHED; every other run of the study (failed trials, killed tunes) is ended, none left
    RUNNING. Returns the finished trials' runs by trial number."""
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    client = MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        ids, filter_string=f"tags.optuna_study = '{study.study_name}'", max_results=10_000
    )
    by_trial: dict[int, list] = {}
    for run in runs:
        assert run.info.status != "RUNNING", f"run {run.info.run_name} was left RUNNING"
        if "optuna_trial_number" in run.data.tags:
            by_trial.setdefault(int(run.data.tags["optuna_trial_number"]), []).append(run)
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states, states
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n_trials, states
    out = {}
    for t in trials:
        statuses = [r.info.status for r in by_trial.get(t.number, [])]
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            assert statuses == ["FINISHED"], (t.number, t.state, statuses)
            (out[t.number],) = by_trial[t.number]
            recorded = t.user_attrs.get("mlflow_run_id")
            assert recorded == out[t.number].info.run_id, (t.number, recorded)
        else:  # a dead or failed trial: at most one run, ended KILLED or FAILED (or FINISHED
            # and tagged FAIL: the trial ran to the end but an objective was not a number)
            assert t.state == TrialState.FAIL, (t.number, t.state)
            tags = [r.data.tags.get("optuna_state") for r in by_trial.get(t.number, [])]
            assert statuses in ([], ["KILLED"], ["FAILED"]) or (
                statuses == ["FINISHED"] and tags == ["FAIL"]
            ), (t.number, statuses)
    return out


PG_BIN = Path(os.environ.get("ANOMIGAN_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresServer:
    """A throwaway PostgreSQL 15 server on 127.0.0.1 and a free port, data in a temporary
    folder owned by the `postgres` user (initdb refuses root), trust auth, stopped at exit."""

    def __init__(self) -> None:
        import getpass
        import shutil
        import subprocess
        import tempfile

        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="anomigan-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.as_user: list[str] = []
        if getpass.getuser() == "root":  # initdb will not run as root: run as `postgres`
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run = subprocess.run
        self._sh(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres"]
            + ["--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
        )
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off"
        self._sh(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
            + ["-o", options, "-w", "-t", "60", "start"]
        )

    def _sh(self, cmd: list[str]) -> None:
        out = self._run(self.as_user + cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {out.stderr[-2000:]} {log}")

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its `postgresql://` URL (SQLAlchemy 2.1: psycopg 3)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database)) as conn:
            return conn.execute(sql).fetchall()

    def stop(self) -> None:
        import shutil

        try:
            self._sh([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL 15 server for the session. Where it cannot start, CI (CI=true) fails
    loudly; elsewhere the tests that need it are skipped with the reason."""
    try:
        server = PostgresServer()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        message = f"PostgreSQL could not start from {PG_BIN}: {exc}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()
