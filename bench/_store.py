"""Shared set-up of the benchmarks: a tracking store and an encoder to measure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def store_with_encoder(model: str, tracking_uri: str | None) -> tuple[Path, str]:
    """Use `tracking_uri` (or a fresh temporary SQLite store) and make sure `model` exists,
    training a 200-step breast encoder when it does not. Returns (work folder, store URI)."""
    from anomigan import tracking

    work = Path(tempfile.mkdtemp(prefix="anomigan-bench-"))
    uri = tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(work)
    tracking.configure(uri)
    if not tracking.model_exists(model):
        from anomigan.jobs import train_job

        print(f"{model} not found in {uri}: training a 200-step breast encoder first")
        train_job("breast", steps=200)
    return work, uri
