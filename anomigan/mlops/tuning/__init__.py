"""Tuning AnomiGAN with Optuna: one study, one MLflow run per trial, one promotion policy.

The study is multi-objective: maximise `prediction_agreement`, minimise a privacy figure of
`anomigan.privacy.evaluation.evaluate` (default `reid_rate_worst`, the most any linkage
attack links; a single attack is a bad target: a deterministic scramble drives the
nearest-record `reid_rate` to 0 while a re-running adversary links nearly every record) and
minimise `corr_matrix_mad`. Every trial is measured on the validation split, carved from the
training split; the test split is only reported, for the promoted trial.

The promotion bars are relative to a reference measured on the same validation split unless
set: `corr_matrix_mad` no worse than the Laplace mechanism at λ 0.1 behind the same guard.

Pruning. Optuna's `Trial.report` / `should_prune` raise NotImplementedError for multi-objective
studies (still so in Optuna 5.0), so pruners cannot be used. Instead every trial checks its own
training checkpoints: the target's agreement on the training batch's x^ (no inference noise, so
an optimistic estimate of the final agreement). From `prune_after` x steps on, a checkpoint below
`prune_floor` ends the trial as PRUNED. The checkpoints are kept as the trial's user attribute
`checkpoint_agreement` and as the nested run's `loss_agreement` metric.

Scale-out and resume. `n_trials` is the study's total of finished (COMPLETE or PRUNED) trials.
Workers claim trials under `claim_lock`: count the finished and running trials, and `ask` only
while that count is below `n_trials` (`ask` hands out queued trials first). The lock dies with
its holder (a PostgreSQL advisory lock, or `flock`), so a killed worker never blocks the rest.
With a PostgreSQL storage the lock spans machines (same `storage` URL, same `study_name`,
`--no-promote` on the extra ones) and every trial lands exactly once; with a journal on a shared
disk too, where that disk honours `flock`. Other databases lock per machine only, so workers on
other machines may overshoot by one trial each.

A worker can be killed at any point of a trial (`CRASH_POINTS`). Before every claim and when a
tune starts, `fail_dead_trials` marks trials left RUNNING by a dead process of this host FAIL,
queues their parameters once more, and ends their MLflow runs (found by tags, since a kill can
land before the run id is on the trial) KILLED. The trial is told inside its run, after
everything is logged, so a finished trial has exactly one FINISHED run. A restarted tune counts
what is finished and runs only the remainder. RUNNING trials of other hosts are left alone
(they may be alive): a tune on that host recovers them.

The modules, bottom up: `settings` (TuneSettings, shared names), `storage` (journal or
database, the claim lock), `space` (search space, sampler), `trial` (one trial, crash points),
`recovery` (dead trials), `workers` (claiming, spawned processes), `study` (open, check the
objective), `results` (rows, promotion policy, references), `promotion` (register the champion)
and `runner` (`tune`).
"""

from anomigan.mlops.tuning.promotion import promote
from anomigan.mlops.tuning.results import choose_champion, trial_rows
from anomigan.mlops.tuning.runner import tune
from anomigan.mlops.tuning.settings import TuneSettings, settings_from
from anomigan.mlops.tuning.space import default_params, suggest_config
from anomigan.mlops.tuning.storage import default_storage, describe_storage, open_storage
from anomigan.mlops.tuning.study import open_study
from anomigan.mlops.tuning.trial import CRASH_POINTS, KILL_AT_ENV

__all__ = [
    "CRASH_POINTS",
    "KILL_AT_ENV",
    "TuneSettings",
    "choose_champion",
    "default_params",
    "default_storage",
    "describe_storage",
    "open_storage",
    "open_study",
    "promote",
    "settings_from",
    "suggest_config",
    "trial_rows",
    "tune",
]
