"""Privacy-utility evaluation of any anonymiser on a fixed split, the paper's protocol.

The test split is anonymised repeatedly until at least `n_records` anonymised records exist
(the paper's "1000 cases"); utility figures compare the target's answers on originals and
releases, privacy figures come from attacks that try to link releases back to patients.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from anomigan import attacks, metrics
from anomigan.anonymizers import Anonymizer


@dataclass
class EvalData:
    """Model-space records of a split with integer labels; `x_all` is the whole data set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def x_all(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_test])

    @property
    def test_index(self) -> np.ndarray:
        """Positions of the test records inside `x_all`."""
        return len(self.x_train) + np.arange(len(self.x_test))


def throughput(anonymizer: Anonymizer, x: np.ndarray, n_rows: int = 20_000) -> float:
    """Rows per second when anonymising `n_rows` records in one call (after a warm-up call)."""
    big = np.tile(x, (math.ceil(n_rows / len(x)), 1))[:n_rows]
    anonymizer.anonymize(big[:256], seed=0)
    start = time.perf_counter()
    anonymizer.anonymize(big, seed=1)
    return n_rows / max(time.perf_counter() - start, 1e-9)


def evaluate(
    anonymizer: Anonymizer,
    data: EvalData,
    predict_proba,
    n_records: int = 1000,
    seed: int | None = 0,
) -> dict[str, float]:
    """Every figure the `train` run logs, measured on the same records for every anonymiser.

    `predict_proba` is the frozen target (model-space records -> class probabilities).
    `seed` fixes the anonymiser's randomness and the attacks' so runs compare like for like.
    """
    rng = np.random.default_rng(seed)

    def draw() -> int | None:
        return None if seed is None else int(rng.integers(0, 2**31 - 1))

    repeats = max(1, math.ceil(n_records / len(data.x_test)))
    x = np.tile(data.x_test, (repeats, 1))
    y = np.tile(data.y_test, repeats)
    source = np.tile(data.test_index, repeats)

    x_hat = anonymizer.anonymize(x, seed=draw())
    rows_per_second = throughput(anonymizer, data.x_all)

    p_orig, p_anon = predict_proba(data.x_test), predict_proba(x_hat)
    target_acc, target_auc = metrics.accuracy_auc(data.y_test, p_orig)
    anon_acc, anon_auc = metrics.accuracy_auc(y, p_anon)
    x_train_hat = anonymizer.anonymize(data.x_train, seed=draw())
    x_all = data.x_all
    oracle_seed = draw()
    return {
        "target_accuracy": target_acc,
        "target_auc": target_auc,
        "anon_accuracy": anon_acc,
        "anon_auc": anon_auc,
        "prediction_agreement": metrics.prediction_agreement(np.tile(p_orig, (repeats, 1)), p_anon),
        "correlation": metrics.correlation(x, x_hat),
        "correlation_pooled": metrics.correlation_pooled(x, x_hat),
        "reid_rate": attacks.reid_rate(x_hat, x_all, source),
        "reid_rate_oracle": attacks.reid_rate_oracle(
            lambda z: anonymizer.anonymize(z, seed=oracle_seed),
            x_hat,
            x_all,
            source,
            rng=np.random.default_rng(oracle_seed),
        ),
        "reid_random_baseline": attacks.random_baseline(len(x_all)),
        "corr_matrix_mad": metrics.corr_matrix_mad(data.x_train, x_train_hat),
        "tstr_accuracy": metrics.tstr_accuracy(
            x_train_hat, data.y_train, data.x_test, data.y_test, seed=0
        ),
        "tstr_accuracy_real": metrics.tstr_accuracy(
            data.x_train, data.y_train, data.x_test, data.y_test, seed=0
        ),
        "n_anonymized_records": float(len(x)),
        "anonymize_rows_per_second": rows_per_second,
    }
