"""The search space over GANConfig, `train`'s defaults as a point of it, and the sampler."""

from __future__ import annotations

from typing import Any

import optuna

from anomigan.method.gan import GANConfig
from anomigan.mlops.tuning.settings import BATCH_SIZES, CHECKPOINTS, TuneSettings


def suggest_config(trial: optuna.Trial, s: TuneSettings):
    """The search space over GANConfig: loss weights, δ, learning rate, batch size, steps."""
    steps = trial.suggest_int("steps", s.min_steps, s.max_steps)
    return GANConfig(
        lambda_e=trial.suggest_float("lambda_e", 0.05, 2.0, log=True),
        lambda_d=trial.suggest_float("lambda_d", 0.1, 2.0, log=True),
        delta=trial.suggest_float("delta", 0.05, 0.9),
        w_real=trial.suggest_float("w_real", 0.01, 1.0, log=True),
        w_link=trial.suggest_float("w_link", 0.1, 3.0, log=True),
        w_nce=trial.suggest_float("w_nce", 0.1, 3.0, log=True),
        w_corr=trial.suggest_float("w_corr", 0.3, 10.0, log=True),
        lr=trial.suggest_float("lr", 1e-4, 5e-3, log=True),
        batch_size=trial.suggest_categorical("batch_size", BATCH_SIZES),
        steps=steps,
        seed=s.seed + trial.number,
        log_every=max(1, steps // CHECKPOINTS),
    )


def default_params(s: TuneSettings) -> dict[str, Any]:
    """`train`'s defaults as a point of the search space: queued first in a new study, so every
    study says whether tuning beat them."""
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
        "w_corr": clip(d.w_corr, 0.3, 10.0),
        "lr": clip(d.lr, 1e-4, 5e-3),
        "batch_size": min(BATCH_SIZES, key=lambda b: abs(b - d.batch_size)),
    }


def make_sampler(s: TuneSettings, worker: int, n_seen: int) -> optuna.samplers.BaseSampler:
    """TPE (multi-objective, constant liar for parallel workers); the seed differs per worker
    and per restart, so neither replays another's random start-up points."""
    return optuna.samplers.TPESampler(
        n_startup_trials=min(10, max(2, s.n_trials // 4)),
        constant_liar=True,
        seed=s.seed * 1_000_003 + worker * 10_007 + n_seen,
    )
