"""Classifier scores: how well a classifier's probabilities fit labels.

Here rather than in `anomigan.privacy.metrics` because the target reports them about itself
(the method layer) and the evaluation about releases (the privacy layer); numpy and
scikit-learn only, so importing it loads no TensorFlow.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def accuracy_auc(labels_int: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(accuracy, AUC); binary AUC on the positive-class probability, multiclass one-vs-rest.
    AUC is NaN when only one class is present."""
    y = np.asarray(labels_int).astype(int)
    p = np.asarray(probs, dtype=float)
    acc = float(np.mean(p.argmax(axis=1) == y))
    if len(np.unique(y)) < 2:
        return acc, float("nan")
    if p.shape[1] == 2:
        auc = roc_auc_score(y, p[:, 1])
    else:
        p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
        auc = roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1]))
    return acc, float(auc)
