"""Distinguishing games (the paper's Section 2.7 experiment): can an adversary tell which of
two records a release came from? Advantages with 95% intervals, and the bound that keeping
the predicted class alone leaks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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


def wilson_interval(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (good near 0 and 1, unlike Wald)."""
    p = wins / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(centre - half), float(centre + half)


def sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
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
    lo, hi = wilson_interval(wins, len(i0))
    return GameResult(wins / len(i0) - 0.5, lo - 0.5, hi - 0.5, len(i0))


def _nearest_score(released: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    return sq_dist(released, x0) - sq_dist(released, x1)


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
            d0 += sq_dist(released, z[: len(x0)])
            d1 += sq_dist(released, z[len(x0) :])
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
