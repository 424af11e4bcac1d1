"""Re-identification attacks on anonymised records (pure numpy)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits


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
    return _wilson(int(round(rate * n)), n, z) if n > 0 else (float("nan"), float("nan"))


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
# Distinguishing games (the paper's Section 2.7 experiment), distance to closest record, an
# inversion-learning adversary and attribute inference. All pure numpy / scikit-learn.
# --------------------------------------------------------------------------------------------

AnonymizeFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GameResult:
    """Advantage (success probability minus 1/2) with a 95% interval over `n` games/records."""

    advantage: float
    ci_low: float
    ci_high: float
    n: int

    def as_metrics(self, name: str) -> dict[str, float]:
        return {
            name: self.advantage,
            f"{name}_ci_low": self.ci_low,
            f"{name}_ci_high": self.ci_high,
        }


def _wilson(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (good near 0 and 1, unlike Wald)."""
    p = wins / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(centre - half), float(centre + half)


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return (d * d).sum(axis=-1)


def _random_pairs(n: int, n_games: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of distinct records drawn uniformly."""
    if n < 2:
        raise ValueError("the distinguishing game needs at least 2 records")
    i0 = rng.integers(0, n, n_games)
    i1 = (i0 + rng.integers(1, n, n_games)) % n
    return i0, i1


def _same_class_pairs(
    classes: np.ndarray, n_games: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of distinct records of the same class, uniform over all such pairs."""
    classes = np.asarray(classes)
    groups = [np.flatnonzero(classes == c) for c in np.unique(classes)]
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        raise ValueError("the same-class game needs a class with at least 2 records")
    weights = np.array([len(g) * (len(g) - 1) for g in groups], float)
    which = rng.choice(len(groups), size=n_games, p=weights / weights.sum())
    i0 = np.empty(n_games, np.int64)
    i1 = np.empty(n_games, np.int64)
    for k, g in enumerate(groups):
        sel = np.flatnonzero(which == k)
        a, b = _random_pairs(len(g), len(sel), rng)
        i0[sel], i1[sel] = g[a], g[b]
    return i0, i1


def _play(
    anonymize_fn: AnonymizeFn,
    x: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    rng: np.random.Generator,
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> GameResult:
    """The challenger picks b, releases E(x_b); the adversary says 1 where score(...) > 0
    (evidence for x1), 0 where < 0, and flips a coin on ties."""
    x = np.asarray(x, np.float32)
    b = rng.integers(0, 2, len(i0))
    released = np.asarray(anonymize_fn(np.where(b[:, None] == 1, x[i1], x[i0])), np.float64)
    s = score(released, x[i0], x[i1])
    guess = np.where(s > 0, 1, np.where(s < 0, 0, rng.integers(0, 2, len(i0))))
    wins = int((guess == b).sum())
    lo, hi = _wilson(wins, len(i0))
    return GameResult(wins / len(i0) - 0.5, lo - 0.5, hi - 0.5, len(i0))


def _nearest_score(released: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    return _sq_dist(released, x0) - _sq_dist(released, x1)


def ind_advantage(
    anonymize_fn: AnonymizeFn,
    x: np.ndarray,
    n_games: int = 10_000,
    rng: np.random.Generator | None = None,
) -> GameResult:
    """The paper's game with random pairs (x0, x1) of records, played by the nearest-record
    adversary (guess the pair member closer to the release). 0 means chance, 0.5 certainty.
    `anonymize_fn` must use fresh randomness on every call."""
    rng = np.random.default_rng() if rng is None else rng
    i0, i1 = _random_pairs(len(x), n_games, rng)
    return _play(anonymize_fn, x, i0, i1, rng, _nearest_score)


def ind_advantage_same_class(
    anonymize_fn: AnonymizeFn,
    x: np.ndarray,
    classes: np.ndarray,
    n_games: int = 10_000,
    rng: np.random.Generator | None = None,
) -> GameResult:
    """The same game with both records of one (predicted) class: what the anonymiser hides
    beyond the class that any prediction-keeping release must reveal."""
    rng = np.random.default_rng() if rng is None else rng
    i0, i1 = _same_class_pairs(classes, n_games, rng)
    return _play(anonymize_fn, x, i0, i1, rng, _nearest_score)


def ind_advantage_oracle(
    anonymize_fn: AnonymizeFn,
    x: np.ndarray,
    classes: np.ndarray,
    n_games: int = 10_000,
    rng: np.random.Generator | None = None,
    n_draws: int = 1,
) -> GameResult:
    """Same-class game played by an adversary with query access: it re-anonymises x0 and x1
    `n_draws` times each with fresh randomness and picks the one whose outputs lie nearer
    (mean squared distance) to the release."""
    rng = np.random.default_rng() if rng is None else rng
    i0, i1 = _same_class_pairs(classes, n_games, rng)

    def score(released: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        d0 = np.zeros(len(released))
        d1 = np.zeros(len(released))
        for _ in range(n_draws):
            z = np.asarray(anonymize_fn(np.concatenate([x0, x1])), np.float64)
            d0 += _sq_dist(released, z[: len(x0)])
            d1 += _sq_dist(released, z[len(x0) :])
        return d0 - d1

    return _play(anonymize_fn, x, i0, i1, rng, score)


def class_leak_bound(
    classes: np.ndarray, n_boot: int = 1000, rng: np.random.Generator | None = None
) -> GameResult:
    """Advantage in the random-pair game of an adversary who only reads the predicted class off
    a release that keeps it: it wins whenever x0 and x1 differ in class and guesses otherwise,
    so the advantage is P(classes differ) / 2. The interval bootstraps the records."""
    rng = np.random.default_rng(0) if rng is None else rng
    classes = np.asarray(classes)
    n = len(classes)
    if n < 2:
        raise ValueError("the class-leak bound needs at least 2 records")

    def bound(c: np.ndarray) -> float:
        counts = np.unique(c, return_counts=True)[1].astype(float)
        return 0.5 * (1.0 - float((counts * (counts - 1)).sum()) / (n * (n - 1)))

    boots = [bound(classes[rng.integers(0, n, n)]) for _ in range(n_boot)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return GameResult(bound(classes), float(lo), float(hi), n)


def _nearest_dist(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query to its nearest pool row."""
    q = np.asarray(queries, np.float64)
    p = np.asarray(pool, np.float64)
    return np.sqrt(_sq_dist(q, p[_nearest(q, p)]))


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
