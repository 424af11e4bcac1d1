"""`bench/score_bins.py`'s score-bin copula: its Bayes bound holds only if a release depends on
the record through its cell (predicted class, score bin) alone, so that is what is checked."""

from __future__ import annotations

import numpy as np
from support import load_bench

from anomigan.method.anonymizers import ClassCopula
from anomigan.privacy.metrics import score_rank_corr

RNG = np.random.default_rng(0)
X = RNG.uniform(size=(600, 6)).astype(np.float32)


def proba(x: np.ndarray) -> np.ndarray:
    """A score that grows with the first feature (class 1 above 0.5), as a target's would."""
    p = 1.0 / (1.0 + np.exp(-8.0 * (np.asarray(x, float)[:, 0] - 0.5)))
    return np.stack([1.0 - p, p], axis=1)


def test_score_bin_copula_releases_depend_on_the_cell_only():
    bins = load_bench("score_bins")
    cop = ClassCopula.fit(X, lambda x: proba(x).argmax(axis=1))
    ref = bins.ScoreBinCopula.fit(cop, proba, X, 3)
    out = ref.anonymize(X, seed=1)
    cells = ref.cells(proba(X))
    for got, want in zip(ref.cells(proba(out)), cells, strict=True):
        np.testing.assert_array_equal(got, want)  # each release in its record's cell
    assert ref.fallbacks == 0 and ref.released == len(X)
    # two records of one cell release alike: nothing else of the record is used
    one_cell = X[(cells[0] == 1) & (cells[1] == 2)]
    assert len(one_cell) > 10
    np.testing.assert_array_equal(ref.anonymize(one_cell, 3), ref.anonymize(one_cell[::-1], 3))
    # and the score is kept far better than by the class alone
    plain = cop.anonymize(X, seed=1)
    assert score_rank_corr(proba(X), proba(out)) > score_rank_corr(proba(X), proba(plain)) + 0.1
