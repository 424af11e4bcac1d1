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
from support import ScoringServer, free_port

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
