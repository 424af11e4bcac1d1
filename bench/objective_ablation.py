"""Validation-split ablation of AnomiGAN's objective against the guarded references.

Each variant is the default GANConfig with some fields changed; every figure is measured on
the validation split (the test split is for reporting only) of each split seed, with the same
evaluation as `train` and the guard as served. Prints one JSON line per (split, anonymiser).

    python bench/objective_ablation.py --dataset breast --seeds 0,1 --steps 2000 \\
        --variant '{"prior": "uniform", "d2_loss": "ce", "w_corr": 0}' --variant '{}'

`--noise-factors 0,0.5,1` also measures each variant with inference noise of variance
c·δ·var_l for each factor c (1 is the paper's δ·var_l), without retraining.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KEYS = (
    "prediction_agreement",
    "score_rank_corr",
    "corr_matrix_mad",
    "reid_rate_worst",
    "reid_rate_oracle_multi",
    "reid_rate_score",
    "reid_rate_inversion",  # the attack that sets the worst on most settings
)


def validation_splits(
    dataset: str, seeds: str, n_records: int = 1000
) -> Iterator[tuple[int, Any, Any, Callable]]:
    """(seed, validation EvalData, target, figures) per split seed; `figures(anonymizer)` runs
    the `train` evaluation (on `n_records` releases) on the validation split and keeps KEYS."""
    from anomigan.method.target import TargetConfig
    from anomigan.mlops.prepare import prepare
    from anomigan.mlops.targets import train_split_target
    from anomigan.privacy.evaluation import evaluate

    for seed in (int(s) for s in seeds.split(",")):
        prep = prepare(dataset, None, seed)
        target = train_split_target(prep, TargetConfig())
        data = prep.eval_data(target, prep.codec).on("validation")

        def figures(anonymizer, seed=seed, data=data, target=target) -> dict[str, float]:
            m = evaluate(anonymizer, data, target.predict_proba, n_records, seed=seed,
                         throughput_rows=0)  # fmt: skip
            return {k: round(m[k], 4) for k in KEYS}

        yield seed, data, target, figures


def train_variant(variant: str, steps: int, seed: int, data: Any, target: Any) -> tuple:
    """(changes, config, trained encoder, seconds) for one `--variant` (GANConfig changes as
    JSON) trained on the split's training records."""
    from anomigan.method.gan import GANConfig, train_anomigan

    changes = json.loads(variant)
    config = GANConfig(**{"steps": steps, "log_every": 0, **changes, "seed": seed})
    start = time.perf_counter()
    trained = train_anomigan(data.x_train, target.model, config, blocks=data.blocks)
    return changes, config, trained, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="breast")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--variant", action="append", default=[], help="GANConfig changes (JSON)")
    ap.add_argument("--references", action="store_true",
                    help="copula, blends 0.2/0.4/0.6, score copula 2/4/16")  # fmt: skip
    ap.add_argument("--n-records", type=int, default=1000,
                    help="releases per evaluation (1000, `evaluate`'s)")  # fmt: skip
    ap.add_argument("--noise-factors", default="", help="comma-separated c: noise c·δ·var_l")
    a = ap.parse_args()

    from anomigan.method.anonymizers import (
        MAX_RESAMPLE,
        AnomiGANAnonymizer,
        ClassCopula,
        CopulaBlend,
        Guarded,
        ScoreCopula,
    )

    for seed, data, target, figures in validation_splits(a.dataset, a.seeds, a.n_records):
        if a.references:
            cop = ClassCopula.fit(data.x_train, target.predict, data.blocks)
            refs = (
                {"class_copula": cop}
                | {f"copula_blend {b:g}": CopulaBlend(cop, b) for b in (0.2, 0.4, 0.6)}
                | {
                    f"score_copula {m}": ScoreCopula(cop, target.predict_proba, m)
                    for m in (2, 4, 16)
                }
            )
            for name, ref in refs.items():
                row = {"seed": seed, "anonymizer": name, **figures(Guarded(ref, target.predict))}
                print(json.dumps(row), flush=True)
        for variant in a.variant or ["{}"]:
            changes, config, trained, secs = train_variant(variant, a.steps, seed, data, target)
            guarded = figures(AnomiGANAnonymizer(trained, target.predict, MAX_RESAMPLE))
            off = figures(AnomiGANAnonymizer(trained, target.predict, 0))
            quiet = figures(AnomiGANAnonymizer(trained, target.predict, MAX_RESAMPLE, 0.0))
            row = {"seed": seed, "anonymizer": "anomigan", "changes": changes, **guarded,
                   "guard_off_agreement": off["prediction_agreement"],
                   "noise_off": {k: quiet[k] for k in KEYS[1:4]},
                   "train_seconds": round(secs, 1)}  # fmt: skip
            print(json.dumps(row), flush=True)
            for c in (float(f) for f in a.noise_factors.split(",") if f):
                scaled = AnomiGANAnonymizer(trained, target.predict, MAX_RESAMPLE, c * config.delta)
                row = {"seed": seed, "anonymizer": "anomigan", "changes": changes,
                       "noise_factor": c, **figures(scaled)}  # fmt: skip
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
