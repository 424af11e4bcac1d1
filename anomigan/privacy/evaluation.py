"""Privacy-utility evaluation of any anonymiser on a fixed split, the paper's protocol.

The test split is anonymised repeatedly until at least `n_records` anonymised records exist
(the paper's "1000 cases"); utility figures compare the target's answers on originals and
releases, privacy figures come from attacks that try to link releases back to patients.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import TypedDict

import numpy as np

from anomigan.method.anonymizers import Anonymizer, Predict
from anomigan.privacy import attacks, metrics

log = logging.getLogger("anomigan.privacy.evaluation")

SPLITS = ("validation", "test")


@dataclass
class EvalData:
    """Model-space records of a split with integer labels; `x_all` is the whole data set.

    `split` names whose records are the targets: `validation` (carved from the training
    split) for every choice made from measurements, `test` only for reporting.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    split: str = "test"
    blocks: list[tuple[int, int, bool]] | None = None  # RecordCodec.model_blocks()

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {self.split!r}")
        if self.x_val is None:
            self.x_val = np.zeros((0, self.x_train.shape[1]), np.float32)
            self.y_val = np.zeros(0, np.int64)
        if self.split == "validation" and len(self.x_val) == 0:
            raise ValueError("no validation records to evaluate on")

    def on(self, split: str) -> EvalData:
        """The same records with another split's records as the targets."""
        return replace(self, split=split)

    @property
    def x_all(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_val, self.x_test])

    @property
    def x_targets(self) -> np.ndarray:
        if self.split == "test":
            return self.x_test
        assert self.x_val is not None  # `__post_init__` fills it
        return self.x_val

    @property
    def y_targets(self) -> np.ndarray:
        if self.split == "test":
            return self.y_test
        assert self.y_val is not None  # given with x_val, or filled by `__post_init__`
        return self.y_val

    @property
    def target_index(self) -> np.ndarray:
        """Positions of the target records inside `x_all`."""
        assert self.x_val is not None  # `__post_init__` fills it
        first = len(self.x_train) + (len(self.x_val) if self.split == "test" else 0)
        return first + np.arange(len(self.x_targets))

    def inversion_known(self, fraction: float, seed: int | None) -> np.ndarray:
        """The training records the inversion adversary holds: a seeded `fraction` of them."""
        n = len(self.x_train)
        k = max(1, min(n, int(round(fraction * n))))
        return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def throughput(anonymizer: Anonymizer, x: np.ndarray, n_rows: int = 20_000) -> float:
    """Rows per second when anonymising `n_rows` records in one call (after a warm-up call)."""
    big = np.tile(x, (math.ceil(n_rows / len(x)), 1))[:n_rows]
    anonymizer.anonymize(big[:256], seed=0)
    start = time.perf_counter()
    anonymizer.anonymize(big, seed=1)
    return n_rows / max(time.perf_counter() - start, 1e-9)


@dataclass(frozen=True)
class AttackConfig:
    """How hard the linkage adversaries try; one place for their constants."""

    oracle_draws: int = 8  # re-anonymisations per candidate of the averaging oracle
    inversion_known: float = 0.5  # share of the training split the inversion adversary holds
    inversion_aug: int = 4  # anonymisations per known record it learns from


def evaluate(
    anonymizer: Anonymizer,
    data: EvalData,
    predict_proba: Predict,
    n_records: int = 1000,
    seed: int | None = 0,
    extended: bool = False,
    n_games: int = 10_000,
    throughput_rows: int = 20_000,
    attribute: tuple[list[int], int] | None = None,
    attack: AttackConfig | None = None,
) -> dict[str, float]:
    """Every figure the `train` run logs, measured on the same records for every anonymiser.

    The targets (`data.split`) are anonymised repeatedly until at least `n_records` releases
    exist. `predict_proba` is the frozen target (model-space records -> class probabilities).
    `seed` fixes the anonymiser's randomness and the attacks' so runs compare like for like.
    Every linkage attack runs, and `reid_rate_worst` is their maximum; `extended` adds the
    distinguishing games, distance to closest record and attribute inference (given (known
    model columns, sensitive model column)). `throughput_rows=0` skips the timing.
    """
    attack = attack or AttackConfig()
    rng = np.random.default_rng(seed)

    def draw() -> int | None:
        return None if seed is None else int(rng.integers(0, 2**31 - 1))

    x_t, y_t = data.x_targets, data.y_targets
    repeats = max(1, math.ceil(n_records / len(x_t)))
    x = np.tile(x_t, (repeats, 1))
    y = np.tile(y_t, repeats)
    source = np.tile(data.target_index, repeats)

    x_hat = anonymizer.anonymize(x, seed=draw())
    rows_per_second = (
        throughput(anonymizer, data.x_all, throughput_rows) if throughput_rows else None
    )

    p_orig, p_anon = predict_proba(x_t), predict_proba(x_hat)
    p_orig_rep = np.tile(p_orig, (repeats, 1))
    target_acc, target_auc = metrics.accuracy_auc(y_t, p_orig)
    anon_acc, anon_auc = metrics.accuracy_auc(y, p_anon)
    x_train_hat = anonymizer.anonymize(data.x_train, seed=draw())
    x_all = data.x_all
    attack_rng = np.random.default_rng(draw())

    def fresh(z: np.ndarray) -> np.ndarray:
        return anonymizer.anonymize(z, seed=int(attack_rng.integers(0, 2**31 - 1)))

    means = attacks.oracle_means(fresh, x_all, attack.oracle_draws, attack_rng)
    logits_all = attacks.target_logits(predict_proba(x_all))
    logits_anon = attacks.target_logits(p_anon)
    inversion = attacks.reid_rate_inversion(
        fresh,
        x_hat,
        x_all,
        source,
        data.inversion_known(attack.inversion_known, seed),
        attacks.inversion_models(0 if seed is None else seed),
        n_aug=attack.inversion_aug,
    )
    rates = {
        "reid_rate": attacks.reid_rate(x_hat, x_all, source),
        "reid_rate_oracle": attacks.reid_rate_oracle(fresh, x_hat, x_all, source, rng=attack_rng),
        "reid_rate_oracle_multi": float(np.mean(attacks._nearest(x_hat, means) == source)),
        "reid_rate_score": attacks.reid_rate_score(logits_anon, logits_all, source),
        "reid_rate_score_features": attacks.reid_rate_score_features(
            x_hat, logits_anon, means, logits_all, source
        ),
        "reid_rate_inversion": inversion.pop("best"),
    }
    rates["reid_rate_worst"] = max(rates[k] for k in attacks.LINKAGE)
    result = {
        "target_accuracy": target_acc,
        "target_auc": target_auc,
        "anon_accuracy": anon_acc,
        "anon_auc": anon_auc,
        "prediction_agreement": metrics.prediction_agreement(p_orig_rep, p_anon),
        "score_rank_corr": metrics.score_rank_corr(p_orig_rep, p_anon),
        "score_mae": metrics.score_mae(p_orig_rep, p_anon),
        "correlation": metrics.correlation(x, x_hat),
        "correlation_pooled": metrics.correlation_pooled(x, x_hat),
        "reid_random_baseline": attacks.random_baseline(len(x_all)),
        "corr_matrix_mad": metrics.corr_matrix_mad(data.x_train, x_train_hat),
        "tstr_accuracy": metrics.tstr_accuracy(x_train_hat, data.y_train, x_t, y_t, seed=0),
        "tstr_accuracy_real": metrics.tstr_accuracy(data.x_train, data.y_train, x_t, y_t, seed=0),
        "n_anonymized_records": float(len(x)),
    }
    for name, rate in rates.items():
        result.update(attacks.rate_metrics(name, rate, len(x)))
    result.update({f"reid_rate_inversion_{k}": v for k, v in inversion.items()})
    if rows_per_second is not None:
        result["anonymize_rows_per_second"] = rows_per_second
    if extended:
        result.update(strong_attacks(anonymizer, data, predict_proba, x_hat, seed, n_games,
                                     attribute))  # fmt: skip
    return result


def strong_attacks(
    anonymizer: Anonymizer,
    data: EvalData,
    predict_proba: Predict,
    x_hat: np.ndarray,
    seed: int | None = 0,
    n_games: int = 10_000,
    attribute: tuple[list[int], int] | None = None,
) -> dict[str, float]:
    """The distinguishing game three ways plus the class-leak bound, distance to closest record
    and attribute inference, on one release `x_hat` of the targets. Every anonymiser call
    draws fresh randomness from `seed`."""
    rng = np.random.default_rng(None if seed is None else seed + 7919)

    def fresh(z: np.ndarray) -> np.ndarray:
        return anonymizer.anonymize(z, seed=int(rng.integers(0, 2**31 - 1)))

    x_all = data.x_all
    classes = predict_proba(x_all).argmax(axis=1)
    out: dict[str, float] = {"dcr_median": attacks.dcr_median(x_hat, x_all)}
    out.update(attacks.ind_advantage(fresh, x_all, n_games, rng).as_metrics("ind_advantage"))
    out.update(
        attacks.ind_advantage_same_class(fresh, x_all, classes, n_games, rng).as_metrics(
            "ind_advantage_same_class"
        )
    )
    out.update(
        attacks.ind_advantage_oracle(fresh, x_all, classes, n_games, rng).as_metrics(
            "ind_advantage_oracle"
        )
    )
    out.update(attacks.class_leak_bound(classes, rng=rng).as_metrics("class_leak_bound"))
    if attribute is not None:
        known, sensitive = attribute
        release = fresh(data.x_targets)  # one release record per target, unlinked
        out.update(
            attacks.attribute_inference_gain(
                release, data.x_targets, data.x_train, known, sensitive
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# The `evaluate` job: AnomiGAN's δ and λe sweeps (the paper's Tables 1 and 2), its ablations and
# every reference behind the same guard, on several splits. MLflow-free: the job passes a
# callback that logs each setting as a nested run.
# --------------------------------------------------------------------------------------------


class Table1Row(TypedDict):
    """One row of the paper's Table 1: the layer given noise ("none" for the first row)."""

    layer: str
    correlation: float
    accuracy: float
    auc: float
    prediction_agreement: float
    n_records: int


class SettingResult(TypedDict):
    """One setting of the sweeps, what `on_setting` gets: figures are means over the splits."""

    name: str
    method: str
    anonymizer: str
    sweep: str
    param_name: str
    param: float
    params: dict[str, float | int | str]
    metrics: dict[str, float]
    per_seed: list[dict[str, float]]
