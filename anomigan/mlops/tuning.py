"""Tuning AnomiGAN with Optuna: one study, one MLflow run per trial, one promotion policy.

The study is multi-objective: maximise `prediction_agreement`, minimise a privacy figure of
`anomigan.privacy.evaluation.evaluate` (default `reid_rate_worst`, the most any linkage attack links; a
single attack is a bad target: a deterministic scramble drives the nearest-record `reid_rate` to
0 while a re-running adversary links nearly every record) and minimise `corr_matrix_mad`. Every
trial is measured on the validation split, carved from the training split; the test split is
only reported, for the promoted trial.

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
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from anomigan.data import TEST_SIZE
from anomigan.method.anonymizers import MAX_RESAMPLE
from anomigan.mlops import tracking

log = logging.getLogger("anomigan.mlops.tuning")

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


# ----------------------------------------------------------------------------- storage


def default_storage() -> str:
    """A journal file next to the tracking store (a local SQLite/file store), else in cwd.

    A journal file rather than SQLite because several local processes append to it safely.
    """
    uri = tracking.tracking_uri()
    folder = Path.cwd()
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
    elif uri.startswith("file:") or "://" not in uri:
        folder = Path(uri.removeprefix("file://").removeprefix("file:")).parent
    return f"journal:{(folder.resolve() / 'optuna.journal')}"


def open_storage(spec: str | None) -> optuna.storages.BaseStorage:
    """`journal:PATH` (or a plain file path): an Optuna journal file (local or shared disk);
    any other `scheme://` URL: an Optuna RDB storage (sqlite, postgresql, mysql...)."""
    spec = spec or default_storage()
    if "://" not in spec or spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    kwargs: dict[str, Any] = {}
    if spec.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        return optuna.storages.RDBStorage(spec, **kwargs)
    except Exception as exc:  # a bad URL: name it (without a password) and the kind of failure
        hint = " (its database driver is not installed)" if isinstance(exc, ImportError) else ""
        raise ValueError(
            f"cannot open Optuna storage {describe_storage(spec)}: {type(exc).__name__}{hint}"
        ) from None


def describe_storage(spec: str | None) -> str:
    """The storage as it may be logged: a database URL's password is masked."""
    spec = spec or default_storage()
    if "://" in spec and not spec.startswith("journal:"):
        with contextlib.suppress(Exception):
            from sqlalchemy.engine import make_url

            return make_url(spec).render_as_string(hide_password=True)
        return spec.split("://", 1)[0] + "://***"
    return spec


# ----------------------------------------------------------------------------- search space


def suggest_config(trial: optuna.Trial, s: TuneSettings):
    """The search space over GANConfig: loss weights, δ, learning rate, batch size, steps."""
    from anomigan.method.gan import GANConfig

    steps = trial.suggest_int("steps", s.min_steps, s.max_steps)
    return GANConfig(
        lambda_e=trial.suggest_float("lambda_e", 0.05, 2.0, log=True),
        lambda_d=trial.suggest_float("lambda_d", 0.1, 2.0, log=True),
        delta=trial.suggest_float("delta", 0.05, 0.9),
        w_real=trial.suggest_float("w_real", 0.01, 1.0, log=True),
        w_link=trial.suggest_float("w_link", 0.1, 3.0, log=True),
        w_nce=trial.suggest_float("w_nce", 0.1, 3.0, log=True),
        lr=trial.suggest_float("lr", 1e-4, 5e-3, log=True),
        batch_size=trial.suggest_categorical("batch_size", BATCH_SIZES),
        steps=steps,
        seed=s.seed + trial.number,
        log_every=max(1, steps // CHECKPOINTS),
    )


def default_params(s: TuneSettings) -> dict[str, Any]:
    """`train`'s defaults as a point of the search space: queued first in a new study, so every
    study says whether tuning beat them."""
    from anomigan.method.gan import GANConfig

    d = GANConfig()

    def clip(v: float, lo: float, hi: float) -> float:
        return float(min(max(v, lo), hi))

    return {
        "steps": int(clip(d.steps, s.min_steps, s.max_steps)),
        "lambda_e": clip(d.lambda_e, 0.05, 2.0),
        "lambda_d": clip(d.lambda_d, 0.1, 2.0),
        "delta": clip(d.delta, 0.05, 0.9),
        "w_real": clip(d.w_real, 0.01, 1.0),
        "w_link": clip(d.w_link, 0.1, 3.0),
        "w_nce": clip(d.w_nce, 0.1, 3.0),
        "lr": clip(d.lr, 1e-4, 5e-3),
        "batch_size": min(BATCH_SIZES, key=lambda b: abs(b - d.batch_size)),
    }


# ----------------------------------------------------------------------------- one trial


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
    from anomigan.method.anonymizers import AnomiGANAnonymizer
    from anomigan.method.gan import train_anomigan
    from anomigan.privacy.evaluation import evaluate

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
            trained = train_anomigan(ctx.data.x_train, ctx.target.model, config, on_checkpoint)
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
    import mlflow

    return mlflow.active_run() is not None


# ----------------------------------------------------------------------------- workers

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
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


Teller = Any  # Callable[[TrialState, list[float] | None], None]: ends the trial in the study


def _claimed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=CLAIMED))


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _is_postgres(spec: str) -> bool:
    with contextlib.suppress(Exception):
        from sqlalchemy.engine import make_url

        return make_url(spec).get_backend_name() == "postgresql"
    return False


@contextlib.contextmanager
def claim_lock(storage_spec: str, study_name: str):
    """Serialise claiming (recover dead trials, count, `ask`, record the owner) among every
    worker of a study. A lock that dies with its holder, so a killed worker never blocks the
    others: on a PostgreSQL storage a session advisory lock (every machine; the server drops it
    with the killed worker's connection), else `flock` on a file next to a journal (shared
    disks too) or, for other databases, in this machine's temp folder."""
    import hashlib

    key = hashlib.sha256(f"{describe_storage(storage_spec)}|{study_name}".encode()).digest()
    if _is_postgres(storage_spec):
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        lock_id = int.from_bytes(key[:8], "big", signed=True)
        engine = create_engine(storage_spec, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
        finally:
            engine.dispose()
        return
    import fcntl

    if "://" not in storage_spec or storage_spec.startswith("journal:"):
        path = Path(storage_spec.removeprefix("journal:").removeprefix("//"))
        path = path.with_name(f"{path.name}.{key[:4].hex()}.lock")
    else:
        path = Path(tempfile.gettempdir()) / f"anomigan-claim-{key[:8].hex()}.lock"
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_sampler(s: TuneSettings, worker: int, n_seen: int) -> optuna.samplers.BaseSampler:
    """TPE (multi-objective, constant liar for parallel workers); the seed differs per worker
    and per restart, so neither replays another's random start-up points."""
    return optuna.samplers.TPESampler(
        n_startup_trials=min(10, max(2, s.n_trials // 4)),
        constant_liar=True,
        seed=s.seed * 1_000_003 + worker * 10_007 + n_seen,
    )


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
            if _claimed(study) >= ctx.settings.n_trials:
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
    from anomigan.data.codec import RecordCodec
    from anomigan.method.target import TrainedTarget
    from anomigan.mlops.jobs import prepare

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
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(payload.threads)
        tf.config.threading.set_inter_op_parallelism_threads(payload.threads)
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


# ----------------------------------------------------------------------------- study


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
        t = by_number.get(int(number)) if number.isdigit() else None
        if t is None or not t.state.is_finished() or not _dead_here(t.user_attrs.get("owner")):
            continue
        tracking.end_run(run_id, "FINISHED" if t.state in FINISHED else "KILLED")
    return failed


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
    from anomigan.method.anonymizers import Identity
    from anomigan.privacy.evaluation import EvalData, evaluate

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


# ----------------------------------------------------------------------------- results


def trial_rows(study: optuna.Study, privacy: str) -> list[dict[str, Any]]:
    """One row per trial: state, objectives, params, MLflow run, Pareto membership."""
    front = {t.number for t in study.best_trials} if _finished(study) else set()
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial_number": t.number, "state": t.state.name}
        values = t.values if t.state == TrialState.COMPLETE else None
        for i, name in enumerate((AGREEMENT, privacy, CORR_MAD)):
            row[name] = values[i] if values else float("nan")
        row["pareto"] = t.number in front
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row["mlflow_run_id"] = t.user_attrs.get("mlflow_run_id", "")
        row["baseline"] = bool(t.user_attrs.get("baseline"))
        rows.append(row)
    return rows


def choose_champion(
    rows: list[dict[str, Any]], privacy: str, min_agreement: float, max_corr_mad: float
) -> tuple[dict[str, Any] | None, str]:
    """The promotion policy: among Pareto trials meeting both bars, the lowest privacy figure
    (ties: higher agreement, then lower corr_matrix_mad, then the earlier trial).

    Restricting to the Pareto front loses nothing: a trial meeting the bars is dominated only
    by trials that meet them too.
    """
    front = [r for r in rows if r["pareto"]]
    if not front:
        return None, "no trial completed, so the study has no Pareto front"
    ok = [r for r in front if r[AGREEMENT] >= min_agreement and r[CORR_MAD] <= max_corr_mad]
    if not ok:
        return None, (
            f"no Pareto trial has {AGREEMENT} >= {min_agreement} and {CORR_MAD} <= "
            f"{max_corr_mad} (best agreement {max(r[AGREEMENT] for r in front):.3f}, lowest "
            f"{CORR_MAD} {min(r[CORR_MAD] for r in front):.3f} among {len(front)} Pareto trials)"
        )
    best = min(ok, key=lambda r: (r[privacy], -r[AGREEMENT], r[CORR_MAD], r["trial_number"]))
    return best, (
        f"trial {best['trial_number']} has the lowest {privacy} ({best[privacy]:.3f}) of the "
        f"{len(ok)} Pareto trials with {AGREEMENT} >= {min_agreement} and {CORR_MAD} <= "
        f"{max_corr_mad}"
    )


def log_results(
    rows: list[dict[str, Any]],
    s: TuneSettings,
    chosen: int | None,
    references: list[dict[str, Any]] | None = None,
) -> None:
    """The Pareto front as a CSV and a plot, every trial as a CSV, the references measured on
    the same validation split as a CSV and on the plot (artifacts under pareto/)."""
    import pandas as pd

    from anomigan.privacy.plots import pareto_front_figure

    frame = pd.DataFrame(rows)
    with tempfile.TemporaryDirectory() as tmp:
        frame.to_csv(Path(tmp) / "trials.csv", index=False)
        front = frame[frame["pareto"]] if len(frame) else frame
        front.to_csv(Path(tmp) / "pareto.csv", index=False)
        if references:
            pd.DataFrame(references).to_csv(Path(tmp) / "references.csv", index=False)
        tracking.log_dir(tmp, "pareto")
    done = [r for r in rows if r["state"] == "COMPLETE"]
    fig = pareto_front_figure(
        agreement=[r[AGREEMENT] for r in done],
        privacy=[r[s.privacy_objective] for r in done],
        corr_mad=[r[CORR_MAD] for r in done],
        on_front=[r["pareto"] for r in done],
        privacy_name=s.privacy_objective,
        min_agreement=s.min_agreement,
        chosen=next((i for i, r in enumerate(done) if r["trial_number"] == chosen), None),
        references={
            r["reference"]: (r[s.privacy_objective], r[AGREEMENT]) for r in references or []
        },
    )
    tracking.log_figure(fig, "pareto/pareto_front.png")


#: the references every study is compared with, measured like a trial: (name, anonymiser kind,
#: parameter)
REFERENCES = (
    ("class_copula", "class_copula", None),
    ("copula_blend_0.2", "copula_blend", 0.2),
    ("copula_blend_0.4", "copula_blend", 0.4),
    (f"laplace_{BAR_REFERENCE_LAMBDA:g}_guard", "laplace_dp", BAR_REFERENCE_LAMBDA),
)


def reference_rows(data, target, codec, s: TuneSettings) -> list[dict[str, Any]]:
    """The references behind the same prediction guard, evaluated on the validation split with
    the trials' protocol: what a trial must beat to be worth promoting."""
    from anomigan.method.anonymizers import ClassCopula, CopulaBlend, Guarded, LaplaceDP
    from anomigan.privacy.evaluation import evaluate

    copula = ClassCopula.fit(data.x_train, target.predict, codec.model_blocks())
    build = {
        "class_copula": lambda _: copula,
        "copula_blend": lambda a: CopulaBlend(copula, a),
        "laplace_dp": LaplaceDP,
    }
    rows = []
    for name, kind, param in REFERENCES:
        anonymizer = Guarded(build[kind](param), target.predict, s.max_resample)
        figures = evaluate(anonymizer, data.on("validation"), target.predict_proba,
                           s.n_records, seed=s.seed, throughput_rows=0)  # fmt: skip
        keys = (AGREEMENT, s.privacy_objective, CORR_MAD)
        rows.append({"reference": name, **{k: figures[k] for k in keys}})
    return rows


def _promote(
    best: dict[str, Any], ctx: TrialContext, codec, prep, study_name: str, parent_run_id: str
) -> tuple[str, Any]:
    """Register the chosen trial's saved encoder (retrained when its artifact is gone) as a new
    version of anomigan-encoder-<dataset> and give it the champion alias."""
    from anomigan.method.anonymizers import AnomiGANAnonymizer
    from anomigan.method.gan import GANConfig, TrainedEncoder, train_anomigan
    from anomigan.mlops.jobs import split_tags
    from anomigan.mlops.serving import log_encoder_model

    try:
        trained = TrainedEncoder.load(
            tracking.download_run_artifacts(best["mlflow_run_id"], "encoder")
        )
        source = "saved encoder"
    except Exception as exc:  # noqa: BLE001 - any download failure: retrain the same trial
        log.info(
            "trial %d's encoder is unavailable (%s): retraining it",
            best["trial_number"],
            type(exc).__name__,
        )
        params = {k.removeprefix("param_"): v for k, v in best.items() if k.startswith("param_")}
        config = GANConfig.from_dict({**params, "seed": ctx.settings.seed + best["trial_number"]})
        trained = train_anomigan(ctx.data.x_train, ctx.target.model, config)
        source = "retrained"
    s = ctx.settings
    anonymizer = AnomiGANAnonymizer(trained, ctx.target.predict, s.max_resample)
    info = log_encoder_model(anonymizer, ctx.target, codec, ctx.data.x_test)
    name = tracking.encoder_model_name(prep.dataset.name)
    version, _ = tracking.register(
        info.model_uri,
        name,
        tags={
            "run_id": parent_run_id,
            "optuna_study": study_name,
            "optuna_trial_number": str(best["trial_number"]),
            "trial_run_id": best["mlflow_run_id"],
            "privacy_objective": ctx.settings.privacy_objective,
            **split_tags(prep),
            "target_model": ctx.target_uri,
            "source": source,
        },
    )
    tracking.set_champion(name, version)
    return version, anonymizer


# ----------------------------------------------------------------------------- the job


def tune(s: TuneSettings) -> dict[str, Any]:
    """Run (or resume) the study, log its Pareto front, apply the promotion policy."""
    from anomigan.mlops.card import description
    from anomigan.mlops.jobs import load_or_train_target, model_card, prepare
    from anomigan.privacy.evaluation import evaluate

    s.validate()
    prep = prepare(s.dataset, s.label, s.split_seed, s.test_size)  # validate data first
    extended = check_privacy_objective(prep, s.privacy_objective)
    storage_spec = s.storage or default_storage()
    study_name = s.study_name or f"tune-{prep.dataset.name}"
    study = open_study(s, storage_spec, study_name, prep.dataset.name)
    with claim_lock(storage_spec, study_name):
        fail_dead_trials(study)
    before = _finished(study)
    tags = {"optuna_study": study_name, "optuna_storage": describe_storage(storage_spec)}
    tags["tune_owner"] = f"{HOST}:{os.getpid()}"  # how a later tune ends this run if it dies
    with tracking.run(f"tune-{prep.dataset.name}", tags=tags) as active:
        parent_id = active.info.run_id
        target, codec, target_uri = load_or_train_target(prep, s.label)
        tracking.log_params(prep.split_params())
        digests = prep.log_inputs()
        settings = {k: v for k, v in asdict(s).items() if k not in ("dataset", "label", "storage")}
        tracking.log_params(
            {
                **settings,
                "study_name": study_name,
                "target_model": target_uri,
                "finished_trials_before": before,
            }
        )
        data = prep.eval_data(target, codec)
        references = reference_rows(data, target, codec, s)
        for ref in references:
            tracking.log_metrics({f"ref_{ref['reference']}_{k}": v for k, v in ref.items()
                                  if k != "reference"})  # fmt: skip
        corr_bar = s.max_corr_mad
        if corr_bar is None:  # the guarded Laplace λ 0.1's, measured above
            corr_bar = references[-1][CORR_MAD]
            log.info("promotion bar: corr_matrix_mad <= %.3f (guarded Laplace λ %g on "
                     "validation)", corr_bar, BAR_REFERENCE_LAMBDA)  # fmt: skip
        tracking.log_metrics({"bar_corr_matrix_mad": corr_bar})
        ctx = TrialContext(s, study_name, data, target, parent_id, target_uri, extended, prep)
        remaining = s.n_trials - _claimed(study)
        log.info(
            "study %s: %d of %d trials finished, %d to run",
            study_name,
            before,
            s.n_trials,
            max(remaining, 0),
        )
        start = time.perf_counter()
        if remaining > 0 and s.n_workers == 1:
            sampler = make_sampler(s, 0, len(study.trials))
            local = optuna.load_study(
                study_name=study_name, storage=study._storage, sampler=sampler
            )
            work(local, ctx, storage_spec)
        elif remaining > 0:
            run_workers(
                WorkerPayload(
                    s,
                    storage_spec,
                    study_name,
                    parent_id,
                    active.info.experiment_id,
                    tracking.tracking_uri(),
                    target_uri,
                    threads=max(1, (os.cpu_count() or 1) // s.n_workers),
                    extended=extended,
                ),
                min(s.n_workers, remaining),
            )
        tune_seconds = time.perf_counter() - start

        rows = trial_rows(study, s.privacy_objective)
        states = [r["state"] for r in rows]
        pareto = [r["trial_number"] for r in rows if r["pareto"]]
        tracking.log_metrics(
            {
                "n_trials_complete": states.count("COMPLETE"),
                "n_trials_pruned": states.count("PRUNED"),
                "n_trials_failed": states.count("FAIL"),
                "n_trials_run": _finished(study) - before,
                "n_pareto": len(pareto),
                "tune_seconds": tune_seconds,
            }
        )
        best, reason = choose_champion(rows, s.privacy_objective, s.min_agreement, corr_bar)
        result: dict[str, Any] = {
            "run_id": parent_id,
            "study_name": study_name,
            "storage": describe_storage(storage_spec),
            "trials_finished": _finished(study),
            "trials_run": _finished(study) - before,
            "pareto_trials": ",".join(map(str, pareto)),
            "tune_seconds": tune_seconds,
        }
        tracking.set_tags({"optuna_pareto_trials": result["pareto_trials"] or "none"})
        log_results(rows, s, best["trial_number"] if best else None, references)
        if best is None:
            status = "none"
        elif not s.promote:
            status, reason = "skipped", f"promotion disabled (would promote: {reason})"
        else:
            version, champion = _promote(best, ctx, codec, prep, study_name, parent_id)
            status = "promoted"
            # chosen on validation; the test split is only reported, here
            test = evaluate(champion, data.on("test"), target.predict_proba, s.n_records,
                            seed=s.seed, throughput_rows=0)  # fmt: skip
            tracking.log_metrics({f"champion_test_{k}": v for k, v in test.items()})
            params = {k[6:]: v for k, v in best.items() if k.startswith("param_")}
            command = (
                f"anomigan tune --dataset {prep.spec} --split-seed {prep.split_seed} "
                f"--study-name {study_name} --storage {describe_storage(storage_spec)}"
            )
            name = tracking.encoder_model_name(prep.dataset.name)
            card = model_card(name, prep, digests, params, champion, data.on("test"), target,
                              test, s.seed, s.n_records, command)  # fmt: skip
            uri = tracking.log_text(card, "model_card.md")
            tracking.describe_version(name, version, description(card, uri))
            result.update(
                model_name=tracking.encoder_model_name(prep.dataset.name),
                version=version,
                champion_trial=best["trial_number"],
            )
            tracking.set_tags({"promoted_trial": best["trial_number"], "promoted_version": version})
            tracking.log_metrics(
                {f"champion_{k}": best[k] for k in (AGREEMENT, s.privacy_objective, CORR_MAD)}
            )
        tracking.set_tags({"promotion": status, "promotion_reason": reason})
        result.update(promotion=status, promotion_reason=reason)
    log.info("promotion: %s (%s)", status, reason)
    return result


def promote(model: str, version: str | int) -> dict[str, str]:
    """Move the champion alias of `model` to `version` by hand."""
    if not tracking.registered_model_exists(model):
        raise ValueError(f"no registered model named {model!r}")
    previous = tracking.champion_version(model)
    tracking.set_champion(model, version)
    return {
        "model_name": model,
        "version": str(version),
        "alias": tracking.CHAMPION,
        "previous_champion": str(previous) if previous else "none",
    }


def settings_from(**kwargs: Any) -> TuneSettings:
    """TuneSettings from keyword arguments, ignoring None (a parameter left at its default)."""
    names = {f.name for f in fields(TuneSettings)}
    unknown = set(kwargs) - names
    if unknown:
        raise ValueError(f"unknown tune parameter(s): {', '.join(sorted(unknown))}")
    return TuneSettings(**{k: v for k, v in kwargs.items() if v is not None})


__all__ = [
    "TuneSettings",
    "choose_champion",
    "default_storage",
    "open_storage",
    "promote",
    "settings_from",
    "trial_rows",
    "tune",
]
