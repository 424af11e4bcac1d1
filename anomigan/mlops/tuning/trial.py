"""One trial: train, evaluate on validation and log as a nested run; and the crash points
at which tests SIGKILL a real worker inside every window of a trial's life."""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import optuna
from optuna.trial import TrialState

from anomigan.method.anonymizers import (
    AnomiGANAnonymizer,
)
from anomigan.method.gan import train_anomigan
from anomigan.mlops import tracking
from anomigan.mlops.tuning.settings import AGREEMENT, CORR_MAD, CORR_MAD_WORST, TuneSettings
from anomigan.mlops.tuning.space import suggest_config
from anomigan.privacy.evaluation import evaluate

log = logging.getLogger("anomigan.mlops.tuning")


#: Test hook: `point` (any trial) or `point:trial_number` SIGKILLs this process when a trial
#: reaches that point, so tests can kill a real worker inside every window of a trial's life.
KILL_AT_ENV = "ANOMIGAN_TEST_KILL_AT"
#: Where a trial's life can be cut, in order: claimed (asked, no owner yet), owned, run_started
#: (MLflow run created, its id not yet on the trial), run_recorded, checkpoint, evaluated
#: (metrics and encoder logged, trial not told), told (trial finished, run not ended).
CRASH_POINTS = (
    "claimed",
    "owned",
    "run_started",
    "run_recorded",
    "checkpoint",
    "evaluated",
    "told",
)


def crash_point(name: str, number: int) -> None:
    """SIGKILL this process here when `ANOMIGAN_TEST_KILL_AT` names this point and trial."""
    if os.environ.get(KILL_AT_ENV) in (name, f"{name}:{number}"):
        os.kill(os.getpid(), signal.SIGKILL)


Teller = Any  # Callable[[TrialState, list[float] | None], None]: ends the trial in the study


@dataclass
class TrialContext:
    """What every trial of one worker needs: data, frozen target, where to log."""

    settings: TuneSettings
    study_name: str
    data: Any  # anomigan.privacy.evaluation.EvalData
    target: Any  # anomigan.method.target.TrainedTarget
    parent_run_id: str
    target_uri: str
    extended: bool = False  # the privacy objective is one of evaluate's strong attacks
    prep: Any = None  # anomigan.mlops.jobs.Prepared: its splits are logged as each trial's inputs


def objective_values(metrics: dict[str, float], privacy: str) -> list[float] | None:
    """(agreement, privacy, corr_mad) as Optuna values; None when a figure is not a number."""
    corr = metrics[CORR_MAD]
    corr = CORR_MAD_WORST if not math.isfinite(corr) else corr
    values = [metrics[AGREEMENT], metrics[privacy], corr]
    return values if all(math.isfinite(v) for v in values) else None


def run_trial(trial: optuna.Trial, ctx: TrialContext, tell: Teller) -> list[float] | None:
    """Train, evaluate and log one trial as a run nested under the tune's run.

    Raises optuna.TrialPruned when a checkpoint falls below the floor (the run ends FINISHED
    with tag optuna_state=PRUNED); returns None when an objective is NaN (the trial fails).
    `tell` ends the trial inside the run, after everything is logged: a kill after it leaves a
    finished trial whose complete run resume ends FINISHED, never a finished run with no trial.
    """
    s = ctx.settings
    config = suggest_config(trial, s)
    tags = {
        "optuna_study": ctx.study_name,
        "optuna_trial_number": str(trial.number),
        "eval_split": "validation",
    }
    if not _active_run():
        tags["mlflow.parentRunId"] = ctx.parent_run_id  # a worker process: nest explicitly
    pruned: optuna.TrialPruned | None = None
    values: list[float] | None = None
    with tracking.run(f"trial-{trial.number}", tags=tags) as active:
        crash_point("run_started", trial.number)  # resume finds the run by its tags
        trial.set_user_attr("mlflow_run_id", active.info.run_id)
        crash_point("run_recorded", trial.number)
        if ctx.prep is not None:
            ctx.prep.log_inputs()
        tracking.log_params(
            {
                **asdict(config),
                "privacy_objective": s.privacy_objective,
                "max_resample": s.max_resample,
            }
        )
        checkpoints: dict[str, float] = {}
        floor_from = s.prune_after * config.steps

        def on_checkpoint(step: int, losses: dict[str, float]) -> None:
            tracking.log_metrics({f"loss_{k}": v for k, v in losses.items()}, step=step)
            agreement = float(losses["agreement"])
            checkpoints[str(step)] = agreement
            trial.set_user_attr("checkpoint_agreement", checkpoints)
            crash_point("checkpoint", trial.number)
            if floor_from <= step < config.steps and agreement < s.prune_floor:
                raise optuna.TrialPruned(
                    f"training agreement {agreement:.3f} < prune_floor {s.prune_floor} "
                    f"at step {step}"
                )

        start = time.perf_counter()
        try:
            trained = train_anomigan(
                ctx.data.x_train, ctx.target.model, config, on_checkpoint, ctx.data.blocks
            )
        except optuna.TrialPruned as exc:
            tracking.set_tags({"optuna_state": "PRUNED", "pruned_because": str(exc)})
            pruned = exc
            tell(TrialState.PRUNED, None)
        else:
            train_seconds = time.perf_counter() - start
            metrics = evaluate(
                AnomiGANAnonymizer(trained, ctx.target.predict, s.max_resample),
                ctx.data.on("validation"),
                ctx.target.predict_proba,
                s.n_records,
                seed=config.seed,
                extended=ctx.extended,
                throughput_rows=0,  # timing under parallel workers says nothing: `train` has it
            )
            tracking.log_metrics({**metrics, "train_seconds": train_seconds})
            with tempfile.TemporaryDirectory() as tmp:
                trained.save(tmp)  # weights, config, layer variances: reused on promotion
                tracking.log_dir(tmp, "encoder")
            values = objective_values(metrics, s.privacy_objective)
            tracking.set_tags({"optuna_state": "COMPLETE" if values else "FAIL"})
            del trained
            crash_point("evaluated", trial.number)
            tell(TrialState.COMPLETE if values else TrialState.FAIL, values)
            crash_point("told", trial.number)
    gc.collect()
    if pruned is not None:
        raise pruned
    return values


def _active_run() -> bool:
    return mlflow.active_run() is not None
