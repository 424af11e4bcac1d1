"""Known values of the metrics and attacks on tiny hand-made arrays."""

import numpy as np
import pytest

from anomigan.privacy import attacks, metrics


def test_identity_anonymiser_is_fully_reidentified_and_agrees() -> None:
    x = np.random.default_rng(0).random((20, 5))
    assert attacks.reid_rate(x, x, np.arange(20)) == 1.0
    assert attacks.reid_rate_oracle(lambda z: z, x, x, np.arange(20)) == 1.0
    p = np.random.default_rng(1).dirichlet([1, 1, 1], size=20)
    assert metrics.prediction_agreement(p, p) == 1.0
    assert metrics.correlation(x, x) == pytest.approx(1.0)
    assert metrics.correlation_pooled(x, x) == pytest.approx(1.0)
    assert metrics.corr_matrix_mad(x, x) == pytest.approx(0.0)


def test_permuted_release_links_to_wrong_records() -> None:
    x = np.eye(6)
    perm = np.array([1, 2, 3, 4, 5, 0])
    # released record i is source perm[i]'s row but claimed to come from i: never re-identified
    assert attacks.reid_rate(x[perm], x, np.arange(6)) == 0.0
    assert attacks.reid_rate(x[perm], x, perm) == 1.0
    assert attacks.reid_rate(x[perm[:3]], x, np.array([1, 0, 3])) == pytest.approx(2 / 3)


def test_oracle_attack_with_a_deterministic_scramble_links_everything() -> None:
    x = np.random.default_rng(0).random((30, 4))
    scramble = lambda z: 1.0 - z[:, ::-1]  # noqa: E731 - fixed map: re-running it links all
    assert attacks.reid_rate_oracle(scramble, scramble(x), x, np.arange(30)) == 1.0
    assert attacks.reid_rate(scramble(x), x, np.arange(30)) < 0.5
    assert attacks.random_baseline(569) == pytest.approx(1 / 569)


def test_agreement_and_accuracy_auc() -> None:
    p1 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    p2 = np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.1, 0.9]])
    assert metrics.prediction_agreement(p1, p2) == 0.75
    acc, auc = metrics.accuracy_auc(np.array([0, 1, 0, 1]), p1)
    assert acc == 1.0 and auc == 1.0
    acc, auc = metrics.accuracy_auc(np.array([1, 0, 1, 0]), p1)
    assert acc == 0.0 and auc == 0.0
    p3 = np.eye(3)[[0, 1, 2, 0]] * 0.7 + 0.1
    acc, auc = metrics.accuracy_auc(np.array([0, 1, 2, 0]), p3)
    assert acc == 1.0 and auc == pytest.approx(1.0)
    assert np.isnan(metrics.accuracy_auc(np.array([1, 1]), p1[:2])[1])


def test_correlations_handle_constant_rows_and_sign() -> None:
    x = np.array([[0.0, 0.5, 1.0], [0.2, 0.2, 0.2]])
    xh = np.array([[1.0, 0.5, 0.0], [0.1, 0.5, 0.9]])
    assert metrics.correlation(x, xh) == pytest.approx(-0.5)  # (-1 + 0) / 2: constant row -> 0
    assert metrics.correlation_pooled(x, 2 * x + 1) == pytest.approx(1.0)
    assert metrics.correlation_pooled(x, np.zeros_like(x)) == 0.0


def test_corr_matrix_mad_known_value_and_nan_safe() -> None:
    a = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [2.0, 2.0, 1.0]])  # col 2 constant
    b = np.array([[0.0, 2.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 2.0]])
    # valid off-diagonal pairs (0,1),(1,0): corr +1 vs -1 -> |diff| 2
    assert metrics.corr_matrix_mad(a, b) == pytest.approx(2.0)


def test_tstr_accuracy_on_separable_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((200, 3))
    y = (x[:, 0] > 0.5).astype(int)
    assert metrics.tstr_accuracy(x[:150], y[:150], x[150:], y[150:]) > 0.85
    assert metrics.tstr_accuracy(x[:150], 1 - y[:150], x[150:], y[150:]) < 0.15


def test_score_rank_corr_and_mae_on_known_scores():
    from anomigan.privacy import metrics

    p = np.linspace(0.01, 0.99, 50)
    two = np.stack([1 - p, p], axis=1)
    assert metrics.score_rank_corr(two, two) == pytest.approx(1.0)
    assert metrics.score_rank_corr(two, two[::-1]) == pytest.approx(-1.0)
    flat = np.tile([[0.5, 0.5]], (50, 1))
    assert metrics.score_rank_corr(two, flat) == 0.0  # a constant release ranks nothing
    assert metrics.score_mae(two, two) == 0.0
    assert metrics.score_mae(two, flat) == pytest.approx(np.abs(p - 0.5).mean())
    # three classes: the mean over classes
    three = np.random.default_rng(0).dirichlet([1, 1, 1], 40)
    assert metrics.score_rank_corr(three, three) == pytest.approx(1.0)
    shuffled = three[:, [0, 1, 2]].copy()
    shuffled[:, 2] = shuffled[::-1, 2]
    expected = (2.0 + metrics.score_rank_corr(three[:, [1, 2]], shuffled[:, [1, 2]])) / 3
    assert metrics.score_rank_corr(three, shuffled) == pytest.approx(expected)
