"""`tune`: run (or resume) the study, log its Pareto front, apply the promotion policy."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from typing import Any

import optuna

from anomigan.mlops import tracking
from anomigan.mlops.card import description, model_card
from anomigan.mlops.prepare import prepare
from anomigan.mlops.targets import load_or_train_target
from anomigan.mlops.tuning.promotion import register_champion
from anomigan.mlops.tuning.recovery import fail_dead_trials
from anomigan.mlops.tuning.results import (
    choose_champion,
    log_results,
    reference_key,
    study_reference_rows,
    trial_rows,
)
from anomigan.mlops.tuning.settings import (
    AGREEMENT,
    BAR_REFERENCE_LAMBDA,
    CORR_MAD,
    HOST,
    TuneSettings,
    n_claimed,
    n_finished,
)
from anomigan.mlops.tuning.space import make_sampler
from anomigan.mlops.tuning.storage import claim_lock, default_storage, describe_storage
from anomigan.mlops.tuning.study import check_privacy_objective, open_study
from anomigan.mlops.tuning.trial import TrialContext
from anomigan.mlops.tuning.workers import WorkerPayload, run_workers, work
from anomigan.privacy.evaluation import evaluate

log = logging.getLogger("anomigan.mlops.tuning")


def tune(s: TuneSettings) -> dict[str, Any]:
    """Run (or resume) the study, log its Pareto front, apply the promotion policy."""
    s.validate()
    prep = prepare(s.dataset, s.label, s.split_seed, s.test_size)  # validate data first
    extended = check_privacy_objective(prep, s.privacy_objective)
    storage_spec = s.storage or default_storage()
    study_name = s.study_name or f"tune-{prep.dataset.name}"
    study = open_study(s, storage_spec, study_name, prep.dataset.name)
    with claim_lock(storage_spec, study_name):
        fail_dead_trials(study)
    before = n_finished(study)
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
        key = reference_key(s, target_uri, digests)
        references = study_reference_rows(study, key, data, target, codec, s, storage_spec)
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
        remaining = s.n_trials - n_claimed(study)
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
                "n_trials_run": n_finished(study) - before,
                "n_pareto": len(pareto),
                "tune_seconds": tune_seconds,
            }
        )
        best, reason = choose_champion(rows, s.privacy_objective, s.min_agreement, corr_bar)
        result: dict[str, Any] = {
            "run_id": parent_id,
            "study_name": study_name,
            "storage": describe_storage(storage_spec),
            "trials_finished": n_finished(study),
            "trials_run": n_finished(study) - before,
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
            version, champion = register_champion(best, ctx, codec, prep, study_name, parent_id)
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
