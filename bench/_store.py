"""Shared set-up of the benchmarks: a tracking store and an encoder to measure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def store_with_encoder(model: str, tracking_uri: str | None) -> tuple[Path, str]:
    """Use `tracking_uri` (or a fresh temporary SQLite store) and make sure `model` exists,
    training a breast encoder with `train`'s defaults when it does not (about 2 minutes: speed
    depends on training quality, since the prediction guard re-draws records whose class a
    poorly trained encoder flips). Returns (work folder, store URI)."""
    from anomigan.mlops import tracking

    work = Path(tempfile.mkdtemp(prefix="anomigan-bench-"))
    uri = tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(work)
    tracking.configure(uri)
    if not tracking.model_exists(model):
        from anomigan.mlops.jobs import train_job

        print(f"{model} not found in {uri}: training a breast encoder first")
        train_job("breast")
    return work, uri
