"""Re-identification attacks on anonymised records (pure numpy)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

# the distinguishing games live in `games`; re-exported here, with the helpers both use
from anomigan.privacy.games import (
    AnonymizeFn,
    GameResult,
    class_leak_bound,
    ind_advantage,
    ind_advantage_oracle,
    ind_advantage_same_class,
    sq_dist,
    wilson_interval,
)

__all__ = [
    "LINKAGE",
    "AnonymizeFn",
    "GameResult",
    "attribute_inference_gain",
    "class_leak_bound",
    "dcr_median",
    "ind_advantage",
    "ind_advantage_oracle",
    "ind_advantage_same_class",
    "inversion_models",
    "oracle_means",
    "random_baseline",
    "rate_metrics",
    "reid_rate",
    "reid_rate_inversion",
    "reid_rate_oracle",
    "reid_rate_oracle_multi",
    "reid_rate_score",
    "reid_rate_score_features",
    "target_logits",
    "wilson",
]


def _nearest(queries: np.ndarray, pool: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Index of the nearest pool row (Euclidean) for each query, in chunks to bound memory."""
    q = np.asarray(queries, np.float64)
    p = np.asarray(pool, np.float64)
    pn = (p * p).sum(axis=1)
    out = np.empty(len(q), dtype=np.int64)
    for s in range(0, len(q), chunk):
        qb = q[s : s + chunk]
        d2 = (qb * qb).sum(axis=1)[:, None] - 2.0 * qb @ p.T + pn[None, :]
        out[s : s + chunk] = d2.argmin(axis=1)
    return out


def reid_rate(x_anon: np.ndarray, x_orig_all: np.ndarray, source_idx: np.ndarray) -> float:
    """Share of anonymised records whose nearest original (over the whole data set) is their own
    source record (the adversary holds the originals but not the anonymiser)."""
    return float(np.mean(_nearest(x_anon, x_orig_all) == np.asarray(source_idx)))


def reid_rate_oracle(
    anonymize_fn: Callable[[np.ndarray], np.ndarray],
    x_anon: np.ndarray,
    x_orig_all: np.ndarray,
    source_idx: np.ndarray,
    rng: np.random.Generator | None = None,
) -> float:
    """The adversary can run the anonymiser: it re-anonymises every original once (fresh
    randomness) and links each released record to the nearest re-anonymised one. `rng` shuffles
    the order of the originals, so batch-level randomness cannot line up with the release."""
    rng = np.random.default_rng() if rng is None else rng
    perm = rng.permutation(len(x_orig_all))
    re_anon = np.empty_like(np.asarray(x_orig_all, np.float32))
    re_anon[perm] = anonymize_fn(np.asarray(x_orig_all, np.float32)[perm])
    return float(np.mean(_nearest(x_anon, re_anon) == np.asarray(source_idx)))


def reid_rate_oracle_multi(
    anonymize_fn: Callable[[np.ndarray], np.ndarray],
    x_anon: np.ndarray,
    x_orig_all: np.ndarray,
    source_idx: np.ndarray,
    n_draws: int = 8,
    rng: np.random.Generator | None = None,
) -> float:
    """The oracle adversary, averaging: it re-anonymises every candidate `n_draws` times and
    links each release to the nearest mean, which cancels the anonymiser's noise that a
    single re-anonymisation leaves in."""
    return float(np.mean(_nearest(x_anon, oracle_means(anonymize_fn, x_orig_all, n_draws, rng))
                         == np.asarray(source_idx)))  # fmt: skip


def oracle_means(
    anonymize_fn: Callable[[np.ndarray], np.ndarray],
    x_orig_all: np.ndarray,
    n_draws: int = 8,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Mean of `n_draws` re-anonymisations of every candidate, each in a fresh random order."""
    rng = np.random.default_rng() if rng is None else rng
    x = np.asarray(x_orig_all, np.float32)
    total = np.zeros(x.shape, np.float64)
    for _ in range(n_draws):
        perm = rng.permutation(len(x))
        z = np.empty_like(x)
        z[perm] = anonymize_fn(x[perm])
        total += z
    return total / n_draws


def target_logits(proba: np.ndarray) -> np.ndarray:
    """Centred log-probabilities: the target's output where saturated probabilities (0.99999
    against 0.999999) still differ, so a score adversary does not meet ties."""
    logp = np.log(np.clip(np.asarray(proba, np.float64), 1e-300, None))
    return logp - logp.mean(axis=1, keepdims=True)


def reid_rate_score(
    logits_anon: np.ndarray, logits_all: np.ndarray, source_idx: np.ndarray
) -> float:
    """The adversary holds the target (the third party owns it): each release is linked to the
    candidate whose target output (`target_logits`) is nearest to the release's."""
    return float(np.mean(_nearest(logits_anon, logits_all) == np.asarray(source_idx)))


def _scaled_nearest(queries: list[np.ndarray], pools: list[np.ndarray], chunk: int = 2048):
    """Nearest pool row by the sum over views of squared distances, each divided by its median
    over the pool for that query, so that no view wins by its units alone."""
    n = len(queries[0])
    out = np.empty(n, dtype=np.int64)
    for s in range(0, n, chunk):
        total = 0.0
        for q, p in zip(queries, pools, strict=True):
            qb = np.asarray(q[s : s + chunk], np.float64)
            p = np.asarray(p, np.float64)
            d2 = (qb * qb).sum(1)[:, None] - 2.0 * qb @ p.T + (p * p).sum(1)[None, :]
            d2 = np.maximum(d2, 0.0)
            total = total + d2 / np.maximum(np.median(d2, axis=1, keepdims=True), 1e-12)
        out[s : s + chunk] = np.argmin(total, axis=1)
    return out


def reid_rate_score_features(
    x_anon: np.ndarray,
    logits_anon: np.ndarray,
    feature_pool: np.ndarray,
    logits_all: np.ndarray,
    source_idx: np.ndarray,
) -> float:
    """Score and features together: the candidate nearest on both the target's output and the
    features (`feature_pool`, e.g. the oracle's mean re-anonymisations), each distance scaled
    by its median so the two views count alike."""
    idx = _scaled_nearest([x_anon, logits_anon], [feature_pool, logits_all])
    return float(np.mean(idx == np.asarray(source_idx)))


def wilson(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a rate measured on `n` releases."""
    return wilson_interval(int(round(rate * n)), n, z) if n > 0 else (float("nan"), float("nan"))


def rate_metrics(name: str, rate: float, n: int) -> dict[str, float]:
    """A linkage rate with its Wilson interval as metric names `name`, `name_ci_low|high`.

    The releases of one evaluation repeat the same targets, so the interval is narrower than
    the spread over splits: the multi-seed interval of the evaluate job is the one to quote."""
    lo, hi = wilson(rate, n)
    return {name: rate, f"{name}_ci_low": lo, f"{name}_ci_high": hi}


#: every linkage attack; `reid_rate_worst` is their maximum, the privacy axis everywhere
LINKAGE = (
    "reid_rate",
    "reid_rate_oracle",
    "reid_rate_oracle_multi",
    "reid_rate_score",
    "reid_rate_score_features",
    "reid_rate_inversion",
)


def random_baseline(n: int) -> float:
    """Re-identification rate of a random guess among n records."""
    return 1.0 / n


# --------------------------------------------------------------------------------------------
# Distance to closest record, an inversion-learning adversary and attribute inference.
# --------------------------------------------------------------------------------------------


def _nearest_dist(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query to its nearest pool row."""
    q = np.asarray(queries, np.float64)
    p = np.asarray(pool, np.float64)
    return np.sqrt(sq_dist(q, p[_nearest(q, p)]))


def dcr_median(x_anon: np.ndarray, x_orig_all: np.ndarray) -> float:
    """Median distance from each anonymised record to its closest original (0 = copies)."""
    return float(np.median(_nearest_dist(x_anon, x_orig_all)))


def inversion_models(seed: int = 0) -> dict[str, Any]:
    """The inversion adversary's models, weakest to strongest; `none` links the raw release."""

    def mlp(hidden: tuple[int, ...]) -> MLPRegressor:
        return MLPRegressor(
            hidden_layer_sizes=hidden,
            max_iter=200,
            early_stopping=True,
            n_iter_no_change=15,
            random_state=seed,
        )

    return {
        "none": None,
        "ridge": Ridge(alpha=1e-3),
        "knn": KNeighborsRegressor(n_neighbors=5, weights="distance"),
        "mlp_64": mlp((64,)),
        "mlp_128x128": mlp((128, 128)),
        "mlp_256x256": mlp((256, 256)),
    }


def reid_rate_inversion(
    anonymize_fn: AnonymizeFn,
    x_anon: np.ndarray,
    x_orig_all: np.ndarray,
    source_idx: np.ndarray,
    known_idx: np.ndarray,
    models: dict[str, Any] | None = None,
    n_aug: int = 4,
) -> dict[str, float]:
    """An adversary who holds the anonymiser and the originals `known_idx` (disjoint from the
    released records' sources) anonymises its known records `n_aug` times, learns a map
    anonymised -> original, inverts the release and links each inverted record to its nearest
    original among the records it does not know (a known record cannot be a target). Returns
    the rate per model and `best` (the adversary picks the strongest; only its own records
    could tell it which, so `best` is an upper bound)."""
    source_idx = np.asarray(source_idx)
    known_idx = np.asarray(known_idx)
    if np.intersect1d(known_idx, source_idx).size:
        raise ValueError("the inversion adversary's known records must not include any target")
    x_all = np.asarray(x_orig_all, np.float32)
    unknown = np.setdiff1d(np.arange(len(x_all)), known_idx)
    x_known = np.tile(x_all[known_idx], (n_aug, 1))
    z_known = np.asarray(anonymize_fn(x_known), np.float64)
    out: dict[str, float] = {}
    for name, model in (inversion_models() if models is None else models).items():
        if model is None:
            guess = np.asarray(x_anon, np.float64)
        else:
            # one BLAS thread: small fits run ~20x slower when threads oversubscribe the CPUs
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore", ConvergenceWarning)  # capped MLPs: fine
                model.fit(z_known, x_known)
                guess = model.predict(np.asarray(x_anon, np.float64))
        out[name] = float(np.mean(unknown[_nearest(guess, x_all[unknown])] == source_idx))
    out["best"] = max(out.values())
    return out


def attribute_inference_gain(
    x_release: np.ndarray,
    x_targets: np.ndarray,
    x_population: np.ndarray,
    known_cols: list[int],
    sensitive_col: int,
    k: int = 5,
) -> dict[str, float]:
    """An adversary knows `known_cols` of each target and sees the release (which contains the
    targets' anonymised records, unlinked). It guesses the sensitive value as that of the
    release record nearest on the known features. The baseline guess uses the population
    alone (k-NN on the known features over records disjoint from the targets), the best an
    adversary could do without the release. gain = baseline MAE - release MAE (model-space
    units; > 0 means the release leaks the attribute)."""
    kc = list(known_cols)
    xt = np.asarray(x_targets, np.float64)
    xr = np.asarray(x_release, np.float64)
    xp = np.asarray(x_population, np.float64)
    truth = xt[:, sensitive_col]
    from_release = xr[_nearest(xt[:, kc], xr[:, kc]), sensitive_col]
    pop = KNeighborsRegressor(n_neighbors=min(k, len(xp))).fit(xp[:, kc], xp[:, sensitive_col])
    from_population = pop.predict(xt[:, kc])
    mae_release = float(np.mean(np.abs(from_release - truth)))
    mae_population = float(np.mean(np.abs(from_population - truth)))
    return {
        "attribute_inference_gain": mae_population - mae_release,
        "attribute_mae_release": mae_release,
        "attribute_mae_population": mae_population,
    }
