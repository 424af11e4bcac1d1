"""Workers: claim and run trials until the study holds `n_trials`, in this process or in
spawned ones that rebuild their context from a picklable payload."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from anomigan.data.codec import RecordCodec
from anomigan.method.runtime import use_step_threads
from anomigan.method.target import TrainedTarget
from anomigan.mlops import tracking
from anomigan.mlops.prepare import prepare
from anomigan.mlops.tuning.recovery import fail_dead_trials
from anomigan.mlops.tuning.settings import HOST, TuneSettings, n_claimed
from anomigan.mlops.tuning.space import make_sampler
from anomigan.mlops.tuning.storage import claim_lock, open_storage
from anomigan.mlops.tuning.trial import TrialContext, crash_point, run_trial

log = logging.getLogger("anomigan.mlops.tuning")


def work(
    study: optuna.Study,
    ctx: TrialContext,
    storage_spec: str,
    parent_pid: int | None = None,
) -> int:
    """Claim and run trials until the study holds `n_trials` claimed ones; returns how many ran.

    Each claim first fails the trials of dead local workers (so survivors finish the study).
    A trial that raises is told FAIL and the exception propagates (resume reruns the slot).
    """
    ran = 0
    while True:
        if parent_pid is not None and os.getppid() != parent_pid:
            log.warning("tune process is gone: worker %d stops", os.getpid())
            break
        with claim_lock(storage_spec, ctx.study_name):
            fail_dead_trials(study)
            if n_claimed(study) >= ctx.settings.n_trials:
                break
            trial = study.ask()
            crash_point("claimed", trial.number)
            trial.set_user_attr("owner", {"host": HOST, "pid": os.getpid()})
        crash_point("owned", trial.number)
        told: list[TrialState] = []

        def tell(state: TrialState, values: list[float] | None, trial=trial, told=told) -> None:
            study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)
            told.append(state)

        try:
            values = run_trial(trial, ctx, tell)
        except optuna.TrialPruned as exc:
            log.info("trial %d pruned: %s", trial.number, exc)
        except BaseException:
            if not told:
                study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            if values is None:
                log.warning("trial %d failed: an objective is not a number", trial.number)
            else:
                log.info(
                    "trial %d: agreement %.3f %s %.3f corr_matrix_mad %.3f",
                    trial.number,
                    values[0],
                    ctx.settings.privacy_objective,
                    values[1],
                    values[2],
                )
        ran += 1
    return ran


@dataclass
class WorkerPayload:
    """What a spawned worker needs to rebuild its context (all picklable, no data)."""

    settings: TuneSettings
    storage: str
    study_name: str
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    target_uri: str
    threads: int
    extended: bool


def load_context(
    s: TuneSettings, study_name: str, parent_run_id: str, target_uri: str, extended: bool
) -> TrialContext:
    """Prepare the split and load the pinned target version (a worker's own copy)."""
    prep = prepare(s.dataset, s.label, s.split_seed, s.test_size)
    folder = tracking.download_model_artifacts(target_uri, "target")
    target = TrainedTarget.load(folder)
    codec = RecordCodec.load(folder / "codec.json")
    data = prep.eval_data(target, codec)
    return TrialContext(s, study_name, data, target, parent_run_id, target_uri, extended, prep)


def _worker_main(payload: WorkerPayload, index: int, parent_pid: int) -> None:
    """Entry of a spawned worker process: rebuild the context, then `work` on the shared study."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.pop("MLFLOW_RUN_ID", None)  # never resume the parent run: nest under it
    os.environ["MLFLOW_EXPERIMENT_ID"] = payload.experiment_id
    try:
        use_step_threads(payload.threads)
        tracking.configure(payload.tracking_uri)
        ctx = load_context(
            payload.settings,
            payload.study_name,
            payload.parent_run_id,
            payload.target_uri,
            payload.extended,
        )
        storage = open_storage(payload.storage)
        n_seen = len(optuna.load_study(study_name=payload.study_name, storage=storage).trials)
        sampler = make_sampler(payload.settings, index + 1, n_seen)
        study = optuna.load_study(study_name=payload.study_name, storage=storage, sampler=sampler)
        work(study, ctx, payload.storage, parent_pid)
    except BaseException as exc:  # the message may quote data values: log the type only
        log.error("worker %d stopped: %s", index, type(exc).__name__)
        sys.exit(1)


def run_workers(payload: WorkerPayload, n_workers: int) -> None:
    """Spawn `n_workers` processes on one study and wait for all of them."""
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(payload, i, os.getpid()), name=f"tune-worker-{i}")
        for i in range(n_workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"{', '.join(failed)} failed; finished trials are kept in study "
            f"{payload.study_name!r}: rerun with the same study_name to resume"
        )
