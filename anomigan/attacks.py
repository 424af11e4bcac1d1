"""Re-identification attacks on anonymised records (pure numpy)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


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


def random_baseline(n: int) -> float:
    """Re-identification rate of a random guess among n records."""
    return 1.0 / n
