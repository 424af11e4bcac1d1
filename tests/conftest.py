"""Shared fixtures: one temporary SQLite MLflow store for the whole test session.

Tests run real MLflow, real Keras and the real scoring server; nothing is mocked. Models that
many tests need (the breast target, a briefly trained encoder) are trained once per session.
"""

from __future__ import annotations

import os
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
    from anomigan import tracking
    from anomigan.jobs import train_target_job

    tracking.configure()
    return train_target_job("breast", epochs=40)
