"""Probe a lead on the validation split: AnomiGAN whose r is the score copula's draw.

Not a package option: this subclass swaps the training draw of r (a same-class record from the
bank) for the nearest-score of `--draws` bank records, and the inference draw for the score
copula's, to measure how far the encoder then gets towards the score copula it copies
(docs/method.md, "The score copula"). Prints one JSON line per (split, anonymiser).

    python bench/score_prior_probe.py --dataset breast --seeds 0,1 --draws 4 \\
        --variant '{"delta": 1.0}' --variant '{"delta": 0.6}' --variant '{}'
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from objective_ablation import train_variant, validation_splits  # noqa: E402  (bench/ is on sys.path)

import anomigan.method.gan as gan_module  # noqa: E402
from anomigan.method.anonymizers import (  # noqa: E402
    MAX_RESAMPLE,
    AnomiGANAnonymizer,
    ClassCopula,
    Guarded,
    ScoreCopula,
)
from anomigan.method.config import PRIOR_BANK  # noqa: E402


def _centred(p: tf.Tensor) -> tf.Tensor:
    logp = tf.math.log(tf.clip_by_value(p, 1e-7, 1.0))
    return logp - tf.reduce_mean(logp, axis=1, keepdims=True)


def score_prior_gan(draws: int) -> type:
    class ScorePriorGAN(gan_module.AnomiGAN):
        """r for each record: of `draws` bank records of its class, the nearest in score."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            assert self.r_bank is not None, "the probe needs the copula prior"
            c, n, d = self.r_bank.shape
            flat = tf.reshape(self.r_bank, [-1, d])
            self.bank_scores = tf.reshape(_centred(self.target(flat, training=False)), [c, n, -1])

        def _matched(self, y: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
            j = self.gen.uniform([tf.shape(y)[0], draws], 0, PRIOR_BANK, dtype=tf.int32)
            yy = tf.repeat(y[:, None], draws, axis=1)
            s = tf.gather_nd(self.bank_scores, tf.stack([yy, j], axis=2))
            gap = tf.reduce_sum(tf.abs(s - _centred(p)[:, None, :]), axis=2)
            best = tf.gather(j, tf.argmin(gap, axis=1, output_type=tf.int32), batch_dims=1)
            return tf.gather_nd(self.r_bank, tf.stack([y, best], axis=1))

        def _sample(self) -> dict[str, tf.Tensor]:
            s = super()._sample()
            y, p = s["y"], s["p"]
            p_neg = self.target(s["x_neg"], training=False)
            s["r"] = self._matched(tf.concat([y, y, y], 0), tf.concat([p, p, p_neg], 0))
            s["r_ref"] = self._matched(s["y_ref"], self.target(s["x_ref"], training=False))
            return s

    return ScorePriorGAN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="breast")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--variant", action="append", default=[], help="GANConfig changes (JSON)")
    a = ap.parse_args()

    gan_module.AnomiGAN = score_prior_gan(a.draws)  # what train_anomigan builds
    for seed, data, target, figures in validation_splits(a.dataset, a.seeds):
        cop = ClassCopula.fit(data.x_train, target.predict, data.blocks)
        ref = Guarded(ScoreCopula(cop, target.predict_proba, a.draws), target.predict)
        print(json.dumps({"seed": seed, "anonymizer": f"score_copula {a.draws}",
                          **figures(ref)}), flush=True)  # fmt: skip
        for variant in a.variant or ["{}"]:
            changes, _, trained, secs = train_variant(variant, a.steps, seed, data, target)
            inner = ScoreCopula(trained.prior, target.predict_proba, a.draws)

            def draw_r(x: np.ndarray, classes: np.ndarray, rng, inner=inner) -> np.ndarray:
                return inner.sample_matched(x, np.asarray(classes), rng)

            trained.draw_r = draw_r  # the inference draw of r: the score copula's
            guarded = figures(AnomiGANAnonymizer(trained, target.predict, MAX_RESAMPLE))
            off = figures(AnomiGANAnonymizer(trained, target.predict, 0))
            row = {"seed": seed, "anonymizer": "anomigan, score prior", "changes": changes,
                   **guarded, "guard_off_agreement": off["prediction_agreement"],
                   "train_seconds": round(secs, 1)}  # fmt: skip
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
