"""Promotion: the chosen trial's encoder registered as the new champion, or the alias
moved by hand."""

from __future__ import annotations

import logging
from typing import Any

from anomigan.method.anonymizers import (
    AnomiGANAnonymizer,
)
from anomigan.method.gan import GANConfig, TrainedEncoder, train_anomigan
from anomigan.mlops import tracking
from anomigan.mlops.prepare import split_tags
from anomigan.mlops.serving import log_encoder_model
from anomigan.mlops.tuning.trial import TrialContext

log = logging.getLogger("anomigan.mlops.tuning")


def register_champion(
    best: dict[str, Any], ctx: TrialContext, codec, prep, study_name: str, parent_run_id: str
) -> tuple[str, Any]:
    """Register the chosen trial's saved encoder (retrained when its artifact is gone) as a new
    version of anomigan-encoder-<dataset> and give it the champion alias."""
    try:
        trained = TrainedEncoder.load(
            tracking.download_run_artifacts(best["mlflow_run_id"], "encoder"),
            ctx.target.predict_proba,
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
        trained = train_anomigan(ctx.data.x_train, ctx.target.model, config, blocks=ctx.data.blocks)
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
