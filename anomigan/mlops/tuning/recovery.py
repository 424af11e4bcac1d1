"""Recovery from workers killed at any point: their trials FAIL and run once more, their
MLflow runs end KILLED (or FINISHED when everything was logged)."""

from __future__ import annotations

import logging
import os
from typing import Any

import optuna
from optuna.trial import TrialState

from anomigan.mlops import tracking
from anomigan.mlops.tuning.settings import FINISHED, HOST

log = logging.getLogger("anomigan.mlops.tuning")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_here(owner: Any) -> bool:
    """True when `owner` (host, pid) names a process of this host that no longer runs. A trial
    with no owner was asked by a worker killed before it recorded one: claims hold the claim
    lock from `ask` to the owner, so under that lock an ownerless RUNNING trial is dead."""
    if not isinstance(owner, dict):
        return True
    return owner.get("host") == HOST and not _pid_alive(int(owner.get("pid", -1)))


def _requeue(study: optuna.Study, dead: optuna.trial.FrozenTrial, trials: list) -> None:
    """Queue a dead trial's parameters once more (its slot reruns them, so a killed baseline
    stays in the study); a retry that dies too is not queued again (its parameters may be what
    kills the worker), nor a trial killed before it had any parameters."""
    if "retry_of" in dead.user_attrs or any(
        t.user_attrs.get("retry_of") == dead.number for t in trials
    ):
        return
    params = dead.system_attrs.get("fixed_params") or dead.params
    if not params:
        return
    attrs = {"retry_of": dead.number}
    if dead.user_attrs.get("baseline"):
        attrs["baseline"] = dead.user_attrs["baseline"]
    study.enqueue_trial(dict(params), user_attrs=attrs)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Recover from processes of this host killed at any point; returns the failed trials.

    Call it under `claim_lock`. Trials left RUNNING by a dead local process are marked FAIL and
    their parameters queued again. Their MLflow runs, found by tags (a kill can land between
    creating a run and recording its id on the trial), end KILLED; a run left RUNNING by a
    worker killed after its trial was told ends FINISHED (everything was logged before the
    tell). Runs of tunes of this study killed on this host end KILLED. Trials and runs of other
    hosts are left alone (they may be alive).
    """
    failed = []
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state != TrialState.RUNNING or not _dead_here(t.user_attrs.get("owner")):
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process recovered it first
        failed.append(t.number)
        _requeue(study, t, trials)
    if failed:
        log.info("trials %s were left RUNNING by a killed process: marked FAIL", failed)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for run in tracking.running_runs_tagged("optuna_study", study.study_name):
        run_id, number = run.info.run_id, run.data.tags.get("optuna_trial_number")
        if number is None:  # a tune's own run: its owner is in its tags from the start
            host, _, pid = run.data.tags.get("tune_owner", "").rpartition(":")
            if pid.isdigit() and _dead_here({"host": host, "pid": int(pid)}):
                tracking.mark_killed(run_id)
            continue
        told = by_number.get(int(number)) if number.isdigit() else None
        if told is None or not told.state.is_finished():
            continue
        if _dead_here(told.user_attrs.get("owner")):
            tracking.end_run(run_id, "FINISHED" if told.state in FINISHED else "KILLED")
    return failed
