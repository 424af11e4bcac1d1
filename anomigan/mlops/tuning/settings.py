"""What one `tune` is given: its settings (the study's identity among them) and the
names and trial states the other tuning modules share."""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, fields
from typing import Any

import optuna
from optuna.trial import TrialState

from anomigan.data import TEST_SIZE
from anomigan.method.anonymizers import (
    MAX_RESAMPLE,
)

AGREEMENT = "prediction_agreement"
CORR_MAD = "corr_matrix_mad"
DEFAULT_PRIVACY = "reid_rate_worst"
#: the reference whose validation corr_matrix_mad is the default promotion bar
BAR_REFERENCE_LAMBDA = 0.1
#: corr_matrix_mad is NaN when a released feature is constant; scored as its worst value.
CORR_MAD_WORST = 2.0
BATCH_SIZES = (10, 16, 32, 64)
CHECKPOINTS = 5  # training checkpoints per trial (pruning decisions, logged losses)
#: Trials counted against `n_trials`: finished ones and those some worker holds. A queued
#: (WAITING) trial is not counted: the next `ask` hands it out and it becomes RUNNING.
CLAIMED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HOST = socket.gethostname()


@dataclass
class TuneSettings:
    """Parameters of one `tune`; also the study's identity (dataset, split, objective)."""

    dataset: str = "breast"
    label: str | None = None
    split_seed: int = 0
    test_size: float = TEST_SIZE
    n_trials: int = 40
    n_workers: int = 1
    storage: str | None = None
    study_name: str | None = None
    privacy_objective: str = DEFAULT_PRIVACY
    min_agreement: float = 0.95
    max_corr_mad: float | None = None  # None: the guarded Laplace λ 0.1's, on validation
    min_steps: int = 1000
    max_steps: int = 6000
    n_records: int = 1000
    prune_floor: float = 0.8
    prune_after: float = 0.5
    seed: int = 0
    promote: bool = True
    max_resample: int = MAX_RESAMPLE  # the prediction guard, as in `train` (0 turns it off)

    def validate(self) -> None:
        """Bad settings fail before anything is created or logged, naming the parameter."""
        checks = [
            (self.n_trials >= 1, "n_trials must be >= 1"),
            (self.n_workers >= 1, "n_workers must be >= 1"),
            (1 <= self.min_steps <= self.max_steps, "need 1 <= min_steps <= max_steps"),
            (math.isfinite(self.min_agreement), "min_agreement must be a number"),
            (self.max_corr_mad is None or self.max_corr_mad >= 0.0, "max_corr_mad must be >= 0"),
            (0.0 <= self.prune_after <= 1.0, "prune_after must be in [0, 1]"),
            (self.n_records >= 1, "n_records must be >= 1"),
            (self.max_resample >= 0, "max_resample must be >= 0"),
            (
                self.privacy_objective not in (AGREEMENT, CORR_MAD),
                f"privacy_objective cannot be {self.privacy_objective!r}: it is already an "
                "objective",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def settings_from(**kwargs: Any) -> TuneSettings:
    """TuneSettings from keyword arguments, ignoring None (a parameter left at its default)."""
    names = {f.name for f in fields(TuneSettings)}
    unknown = set(kwargs) - names
    if unknown:
        raise ValueError(f"unknown tune parameter(s): {', '.join(sorted(unknown))}")
    return TuneSettings(**{k: v for k, v in kwargs.items() if v is not None})


def n_claimed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=CLAIMED))


def n_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))
