"""Utility and fidelity metrics for anonymised records (pure numpy / scikit-learn)."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

# the target reports it about itself (method layer); re-exported for the evaluation
from anomigan.method.scores import accuracy_auc

__all__ = [
    "accuracy_auc",
    "corr_matrix_mad",
    "correlation",
    "correlation_pooled",
    "prediction_agreement",
    "score_mae",
    "score_rank_corr",
    "tstr_accuracy",
]


def prediction_agreement(p_orig: np.ndarray, p_anon: np.ndarray) -> float:
    """Share of records whose predicted class (argmax of probabilities, or labels) is unchanged."""
    a, b = np.asarray(p_orig), np.asarray(p_anon)
    la = a.argmax(axis=1) if a.ndim == 2 else a
    lb = b.argmax(axis=1) if b.ndim == 2 else b
    return float(np.mean(la == lb))


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    out = np.zeros(len(a))
    ok = den > 1e-12
    out[ok] = num[ok] / den[ok]
    return out


def correlation(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean per-record Pearson r between original and anonymised rows; a row with zero variance
    on either side counts as r = 0 (no linear relation can be measured)."""
    return float(np.mean(_rowwise_pearson(np.asarray(x, float), np.asarray(x_hat, float))))


def correlation_pooled(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Pearson r over all flattened values (0 if either side is constant)."""
    r = _rowwise_pearson(np.ravel(x)[None, :].astype(float), np.ravel(x_hat)[None, :].astype(float))
    return float(r[0])


def _corr_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    xc = x - x.mean(axis=0)
    sd = np.sqrt((xc * xc).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (xc.T @ xc) / np.outer(sd, sd)
    c[~np.isfinite(c)] = np.nan
    return c


def corr_matrix_mad(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean absolute difference between the off-diagonal feature-correlation matrices of the two
    data sets; features constant on either side are skipped (NaN-safe)."""
    cx, ch = _corr_matrix(x), _corr_matrix(x_hat)
    off = ~np.eye(cx.shape[0], dtype=bool)
    diff = np.abs(cx - ch)[off]
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if diff.size else float("nan")


def tstr_accuracy(
    x_anon_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int = 0,
) -> float:
    """Train-on-synthetic, test-on-real: a fresh logistic regression fitted on anonymised records
    and their labels, scored on real test records."""
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(np.asarray(x_anon_train), np.asarray(y_train))
    return float(clf.score(np.asarray(x_test), np.asarray(y_test)))


def _score_columns(p: np.ndarray) -> np.ndarray:
    """The scores per-record utility is judged on: the positive-class probability for two
    classes, every class's probability for more."""
    p = np.asarray(p, float)
    return p[:, 1:] if p.shape[1] == 2 else p


def score_rank_corr(p_orig: np.ndarray, p_anon: np.ndarray) -> float:
    """Spearman correlation between the target's scores on originals and on their releases
    (mean over classes beyond two): the per-record utility a class-level sampler cannot fake.
    A constant side carries no ranking, so it counts as 0."""
    a, b = _score_columns(p_orig), _score_columns(p_anon)
    out = []
    for j in range(a.shape[1]):
        if np.ptp(a[:, j]) == 0 or np.ptp(b[:, j]) == 0:
            out.append(0.0)
        else:
            out.append(float(spearmanr(a[:, j], b[:, j]).statistic))
    return float(np.mean(out))


def score_mae(p_orig: np.ndarray, p_anon: np.ndarray) -> float:
    """Mean absolute difference of the target's scores on originals and releases."""
    return float(np.mean(np.abs(_score_columns(p_orig) - _score_columns(p_anon))))
