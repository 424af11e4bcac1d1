"""Opening a study (refusing one made for another data set, split or objective) and
checking the privacy objective before anything is created."""

from __future__ import annotations

import warnings

import numpy as np
import optuna

from anomigan.method.anonymizers import (
    Identity,
)
from anomigan.mlops.tuning.settings import AGREEMENT, CORR_MAD, TuneSettings
from anomigan.mlops.tuning.space import default_params
from anomigan.mlops.tuning.storage import open_storage
from anomigan.privacy.evaluation import EvalData, evaluate


def open_study(s: TuneSettings, storage_spec: str, study_name: str, dataset: str) -> optuna.Study:
    """Create the study (queueing `train`'s defaults) or load it, refusing a study that was
    made for another data set, split or privacy objective."""
    identity = {
        "dataset": dataset,
        "split_seed": s.split_seed,
        "test_size": s.test_size,
        "privacy_objective": s.privacy_objective,
    }
    storage = open_storage(storage_spec)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        study = None
    if study is not None:
        for key, value in identity.items():
            if study.user_attrs.get(key) != value:
                raise ValueError(
                    f"study {study_name!r} was made with {key}={study.user_attrs.get(key)!r}, "
                    f"not {value!r}: choose another study_name"
                )
        return study
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=["maximize", "minimize", "minimize"],
        load_if_exists=True,  # another machine may create it at the same moment
    )
    for key, value in identity.items():
        study.set_user_attr(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([AGREEMENT, s.privacy_objective, CORR_MAD])
    study.enqueue_trial(default_params(s), user_attrs={"baseline": "train defaults"})
    return study


def check_privacy_objective(prep, name: str) -> bool:
    """The objective must be a figure `evaluate` returns; True when it is one of the strong
    attacks (`extended=True`, seconds per trial). Checked on the identity release with a toy
    classifier (touches nothing) before anything is created."""
    _, y_train = np.unique(np.asarray(prep.train.labels).astype(str), return_inverse=True)
    _, y_test = np.unique(np.asarray(prep.test.labels).astype(str), return_inverse=True)
    data = EvalData(prep.x_train, y_train, prep.x_test, y_test)
    cut = float(np.median(prep.x_train[:, 0]))

    def toy(x: np.ndarray) -> np.ndarray:
        high = (np.asarray(x)[:, 0] > cut).astype(float)
        return np.stack([1.0 - high, high], axis=1)

    n = len(prep.x_test)
    with np.errstate(all="ignore"):
        figures = evaluate(Identity(), data, toy, n, seed=0, throughput_rows=0)
        if name in figures:
            return False
        few = EvalData(data.x_train[:150], data.y_train[:150], data.x_test[:40], data.y_test[:40])
        figures = evaluate(
            Identity(), few, toy, 40, seed=0, throughput_rows=0, extended=True, n_games=100
        )
    if name not in figures:
        raise ValueError(
            f"privacy_objective {name!r} is not a figure of evaluate(); choose one of "
            + ", ".join(sorted(figures))
        )
    return True
