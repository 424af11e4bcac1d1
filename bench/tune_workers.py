"""Benchmark: one local tune worker against several on the same trials; prints the speed-up.

Both studies get the same queued hyper-parameter sets (drawn once with a seeded random
sampler), so the workers do identical work and only the scheduling differs. Runs in a fresh
temporary MLflow store unless --tracking-uri is given.

    python bench/tune_workers.py --n-trials 8 --steps 300 --workers 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast")
    parser.add_argument("--n-trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300, help="training steps of every trial")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-records", type=int, default=200)
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()

    import optuna

    from anomigan.mlops import tracking
    from anomigan.mlops.jobs import prepare, train_target_job
    from anomigan.mlops.tuning import TuneSettings, open_study, suggest_config, tune

    tmp = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    os.chdir(tmp)  # artifacts of a fresh store land here
    tracking.configure(args.tracking_uri or f"sqlite:///{tmp / 'mlflow.db'}")
    name = prepare(args.dataset, None).dataset.name
    if not tracking.model_exists(f"models:/{tracking.target_model_name(name)}@champion"):
        train_target_job(args.dataset)

    # the same hyper-parameter sets for every run
    draft = TuneSettings(min_steps=args.steps, max_steps=args.steps)
    sampler_study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    param_sets = []
    for _ in range(args.n_trials):
        trial = sampler_study.ask()
        suggest_config(trial, draft)
        param_sets.append(trial.params)

    seconds: dict[int, float] = {}
    for n_workers in sorted({1, args.workers}):
        settings = TuneSettings(
            dataset=args.dataset,
            n_trials=args.n_trials,
            n_workers=n_workers,
            storage=f"journal:{tmp / f'bench-{n_workers}.journal'}",
            study_name=f"bench-workers-{n_workers}",
            min_steps=args.steps,
            max_steps=args.steps,
            n_records=args.n_records,
            prune_floor=0.0,
            promote=False,
        )
        study = open_study(settings, settings.storage, settings.study_name, name)
        for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,)):
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        for params in param_sets:  # replace the queued defaults by the shared sets
            study.enqueue_trial(params)
        start = time.perf_counter()
        result = tune(settings)
        seconds[n_workers] = time.perf_counter() - start
        print(
            f"workers={n_workers}: {result['trials_run']} trials in {seconds[n_workers]:.1f} s "
            f"(trial phase {result['tune_seconds']:.1f} s), "
            f"{60 * result['trials_run'] / seconds[n_workers]:.2f} trials/min"
        )
    print(f"cpu cores: {os.cpu_count()}")
    if args.workers != 1:
        print(f"speed-up {args.workers} workers vs 1: {seconds[1] / seconds[args.workers]:.2f}x")


if __name__ == "__main__":  # the spawned workers re-import this file
    main()
