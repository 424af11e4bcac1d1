"""The anonymiser protocol: Laplace DP, identity, the class prototype, the copula family and
AnomiGAN's guard."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from anomigan.method.anonymizers import (
    SAMPLE_ROWS,
    AnomiGANAnonymizer,
    Anonymizer,
    ClassCopula,
    ClassPrototype,
    CopulaBlend,
    Guarded,
    Identity,
    LaplaceDP,
    ScoreBinCopula,
    ScoreCopula,
    guard_release,
    is_guarded,
)
from anomigan.method.gan import GANConfig, TrainedEncoder
from anomigan.method.networks import build_encoder
from anomigan.method.noise import LayerVariances
from anomigan.privacy.metrics import score_rank_corr

RNG = np.random.default_rng(0)
X = RNG.uniform(size=(400, 12)).astype(np.float32)


def first_feature_class(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x)[:, 0] > 0.5).astype(int)


def first_feature_proba(x: np.ndarray) -> np.ndarray:
    """A score that grows with the first feature (class 1 above 0.5), as a target's would."""
    p = 1.0 / (1.0 + np.exp(-10.0 * (np.asarray(x, float)[:, 0] - 0.5)))
    return np.stack([1.0 - p, p], axis=1)


def test_every_anonymizer_follows_the_protocol():
    untrained = _untrained_encoder()
    for anon in (
        Identity(),
        LaplaceDP(0.3),
        ClassPrototype.fit(X, first_feature_class),
        AnomiGANAnonymizer(untrained, first_feature_class),
        ClassCopula.fit(X, first_feature_class),
        CopulaBlend(ClassCopula.fit(X, first_feature_class), 0.4),
        ScoreCopula(ClassCopula.fit(X, first_feature_class), first_feature_proba, 4),
        Guarded(LaplaceDP(0.3), first_feature_class),
    ):
        assert isinstance(anon, Anonymizer)
        out = anon.anonymize(X[:50], seed=1)
        assert out.shape == (50, 12) and np.isfinite(out).all()
        np.testing.assert_allclose(anon.anonymize(X[:50], seed=1), out)
        assert all(isinstance(v, float | int | str) for v in anon.params().values())


def test_laplace_noise_has_the_mechanism_scale_and_epsilon():
    dp = LaplaceDP(0.3)
    noise = dp.anonymize(np.full((2000, 12), 0.5), seed=3) - 0.5
    assert abs(noise.mean()) < 0.02
    assert noise.std() == pytest.approx(0.3 * np.sqrt(2), rel=0.05)  # Laplace(b) std = b√2
    assert dp.epsilon_per_feature == pytest.approx(1 / 0.3)
    assert dp.epsilon_per_record(12) == pytest.approx(12 / 0.3)
    assert not np.allclose(dp.anonymize(X, seed=1), dp.anonymize(X, seed=2))


def test_identity_copies_and_prototype_keeps_the_class_but_not_the_record():
    out = Identity().anonymize(X)
    np.testing.assert_array_equal(out, X)
    assert out is not X
    proto = ClassPrototype.fit(X, first_feature_class, noise=0.001)
    released = proto.anonymize(X, seed=0)
    assert (first_feature_class(released) == first_feature_class(X)).all()
    # every release sits on its class's mean training record, whatever the record was
    assert np.abs(released - proto.prototypes[first_feature_class(X)]).max() < 0.01


def _untrained_encoder() -> TrainedEncoder:
    enc = build_encoder(12)
    variances = LayerVariances([np.ones(s, np.float32) for s in enc.hidden_shapes])
    return TrainedEncoder(enc, variances, GANConfig(delta=0.3))


def test_prediction_guard_redraws_until_the_class_is_kept():
    trained = _untrained_encoder()
    wanted = first_feature_class(X)

    def agreement(anon: AnomiGANAnonymizer) -> float:
        return float((first_feature_class(anon.anonymize(X, seed=5)) == wanted).mean())

    unguarded = agreement(AnomiGANAnonymizer(trained))
    guarded = agreement(AnomiGANAnonymizer(trained, first_feature_class, max_resample=20))
    assert guarded > unguarded
    # an untrained encoder ignores x, so only re-drawing can keep the class; each draw hits
    # the wanted side of a threshold with some fixed chance, 21 draws almost surely do
    assert guarded >= 0.97
    off = AnomiGANAnonymizer(trained, first_feature_class, max_resample=0)
    np.testing.assert_allclose(
        off.anonymize(X, seed=5), AnomiGANAnonymizer(trained).anonymize(X, seed=5)
    )


def test_prediction_guard_draws_each_record_at_most_max_resample_more_times():
    """Records no release can match are drawn exactly 1 + max_resample times, in rounds of
    1, 2, 4, then the remaining 3 candidates; the others only once."""
    trained, rows = _untrained_encoder(), []

    class Counting:  # the encoder, counting the rows each call draws
        config = trained.config

        def anonymize(self, x: np.ndarray, **kw) -> np.ndarray:
            rows.append(len(x))
            return trained.anonymize(x, **kw)

    x = X.copy()
    x[:7, 0] = 1.0  # releases come out of a sigmoid: never exactly 1, so class 1 is never kept
    anon = AnomiGANAnonymizer(Counting(), lambda z: (z[:, 0] >= 1.0).astype(int), max_resample=10)
    out = anon.anonymize(x, seed=0)
    assert rows == [len(x), 7, 14, 28, 21]
    assert out.shape == x.shape and np.all((out > 0) & (out < 1))


# ------------------------------------------------------------------ references and the guard


def _mixed_blocks() -> tuple[np.ndarray, list[tuple[int, int, bool]]]:
    """Records with 3 numeric columns, a binary category and a 3-level one-hot block."""
    rng = np.random.default_rng(1)
    num = rng.uniform(size=(600, 3))
    num[:, 1] = 0.7 * num[:, 0] + 0.3 * rng.uniform(size=600)  # a correlated pair
    binary = (rng.uniform(size=600) < 0.3).astype(float)[:, None]
    onehot = np.eye(3)[rng.integers(0, 3, 600)]
    x = np.concatenate([num, binary, onehot], axis=1).astype(np.float32)
    return x, [(0, 1, False), (1, 1, False), (2, 1, False), (3, 1, True), (4, 3, True)]


def test_class_copula_draws_valid_records_of_the_class_that_ignore_the_record():
    x, blocks = _mixed_blocks()
    cop = ClassCopula.fit(x, first_feature_class, blocks)
    out = cop.anonymize(x, seed=0)
    assert set(np.unique(out[:, 3])) <= {0.0, 1.0}
    np.testing.assert_array_equal(out[:, 4:].sum(axis=1), 1.0)  # one level per record
    assert set(np.unique(out[:, 4:])) <= {0.0, 1.0}
    # the class is kept (the threshold column's marginal is drawn per class) ...
    assert (first_feature_class(out) == first_feature_class(x)).mean() > 0.98
    # ... and nothing else of the record: two records of one class release alike
    same_class = x[first_feature_class(x) == 1]
    shuffled = same_class[::-1].copy()
    np.testing.assert_array_equal(cop.anonymize(same_class, 3), cop.anonymize(shuffled, 3))
    # the correlated pair stays correlated, the prototype's releases do not
    r = np.corrcoef(out[:, 0], out[:, 1])[0, 1]
    assert r == pytest.approx(np.corrcoef(x[:, 0], x[:, 1])[0, 1], abs=0.1)
    assert cop.anonymize(x[:0], seed=0).shape == (0, x.shape[1])


def test_class_copula_draws_in_chunks_the_values_of_one_whole_draw():
    """`sample` draws SAMPLE_ROWS rows at a time for speed; the values must be those of one
    draw of all the normals, mapped through the class's copula and interpolated marginals."""
    cop = ClassCopula.fit(X, first_feature_class)
    n = 2 * SAMPLE_ROWS + 5
    out = cop.sample(np.ones(n, int), np.random.default_rng(7))
    m = cop.models[1]
    z = np.random.default_rng(7).standard_normal((n, X.shape[1]))
    u = special.ndtr(z @ m.chol.T)
    steps = np.arange(m.grid.shape[1])
    whole = np.stack(
        [np.interp(u[:, j] * steps[-1], steps, m.grid[j]) for j in range(X.shape[1])], axis=1
    )
    np.testing.assert_allclose(out, whole, atol=1e-6)


def test_copula_blend_runs_from_the_copula_to_the_record():
    x, blocks = _mixed_blocks()
    cop = ClassCopula.fit(x, first_feature_class, blocks)
    np.testing.assert_allclose(CopulaBlend(cop, 1.0).anonymize(x, 2), x, atol=1e-6)
    np.testing.assert_allclose(CopulaBlend(cop, 0.0).anonymize(x, 2), cop.anonymize(x, 2))
    half = CopulaBlend(cop, 0.5).anonymize(x, 2)
    np.testing.assert_allclose(half, 0.5 * x + 0.5 * cop.anonymize(x, 2), atol=1e-6)
    assert CopulaBlend(cop, 0.4).params()["blend_a"] == 0.4


def test_score_copula_keeps_the_score_with_more_draws_and_is_the_copula_with_one():
    x, blocks = _mixed_blocks()
    cop = ClassCopula.fit(x, first_feature_class, blocks)
    np.testing.assert_array_equal(ScoreCopula(cop, first_feature_proba, 1).anonymize(x, 5),
                                  cop.anonymize(x, 5))  # fmt: skip
    score = first_feature_proba(x)[:, 1]
    gaps = []
    for m in (1, 4, 32):
        out = ScoreCopula(cop, first_feature_proba, m).anonymize(x, seed=0)
        assert (first_feature_class(out) == first_feature_class(x)).mean() > 0.98
        np.testing.assert_array_equal(out[:, 4:].sum(axis=1), 1.0)  # valid copula records
        gaps.append(np.abs(first_feature_proba(out)[:, 1] - score).mean())
    assert gaps[0] > 2 * gaps[1] > 4 * gaps[2]
    # only the score is matched: the other columns are the copula's, not the record's
    out = ScoreCopula(cop, first_feature_proba, 32).anonymize(x, seed=0)
    assert abs(np.corrcoef(out[:, 2], x[:, 2])[0, 1]) < 0.15
    assert ScoreCopula(cop, first_feature_proba, 4).anonymize(x[:0], 0).shape == (0, x.shape[1])
    with pytest.raises(ValueError, match="n_draws must be >= 1"):
        ScoreCopula(cop, first_feature_proba, 0)


def test_score_bin_copula_releases_depend_on_the_cell_only():
    """Its linkage bound, cells / N, holds only if a release depends on the record through its
    cell (predicted class, score bin) alone, so that is what is checked."""
    x = RNG.uniform(size=(600, 6)).astype(np.float32)
    cop = ClassCopula.fit(x, first_feature_class)
    ref = ScoreBinCopula.fit(cop, first_feature_proba, x, 3)
    assert ref.bins == 3 and ref.params() == {"bins": 3, "shrinkage": cop.shrinkage}
    out = ref.anonymize(x, seed=1)
    cells = ref.cells(first_feature_proba(x))
    for got, want in zip(ref.cells(first_feature_proba(out)), cells, strict=True):
        np.testing.assert_array_equal(got, want)  # each release in its record's cell
    assert ref.fallbacks == 0 and ref.released == len(x)
    # two orderings of one cell's records release alike: nothing else of the record is used
    one_cell = x[(cells[0] == 1) & (cells[1] == 2)]
    assert len(one_cell) > 10
    np.testing.assert_array_equal(ref.anonymize(one_cell, 3), ref.anonymize(one_cell[::-1], 3))
    # and the score is kept far better than by the class alone
    plain = cop.anonymize(x, seed=1)
    p = first_feature_proba(x)
    assert score_rank_corr(p, first_feature_proba(out)) > (
        score_rank_corr(p, first_feature_proba(plain)) + 0.1
    )
    assert ref.anonymize(x[:0], 0).shape == (0, x.shape[1])
    with pytest.raises(ValueError, match="bins must be >= 1"):
        ScoreBinCopula.fit(cop, first_feature_proba, x, 0)


def test_score_bin_copula_with_one_bin_keeps_only_the_class():
    x = RNG.uniform(size=(300, 6)).astype(np.float32)
    cop = ClassCopula.fit(x, first_feature_class)
    ref = ScoreBinCopula.fit(cop, first_feature_proba, x, 1)
    out = ref.anonymize(x, seed=2)
    np.testing.assert_array_equal(first_feature_class(out), first_feature_class(x))
    np.testing.assert_array_equal(ref.cells(first_feature_proba(x))[1], 0)


def test_the_guard_is_one_mechanism_for_every_anonymiser():
    """Laplace behind `Guarded` gets exactly the re-draws AnomiGAN's guard makes: the same
    function with the same draws gives the same release, and the agreement goes to 1."""
    wanted = first_feature_class(X)
    lap = LaplaceDP(0.3)
    unguarded = (first_feature_class(lap.anonymize(X, seed=4)) == wanted).mean()
    guarded = Guarded(lap, first_feature_class, max_resample=20)
    assert (first_feature_class(guarded.anonymize(X, seed=4)) == wanted).mean() == 1.0
    assert unguarded < 0.9
    rng = np.random.default_rng(4)
    by_hand = guard_release(
        lambda z: lap.anonymize(z, seed=int(rng.integers(0, 2**63 - 1))),
        X,
        first_feature_class,
        20,
    )
    np.testing.assert_array_equal(by_hand, guarded.anonymize(X, seed=4))
    assert is_guarded(guarded) and not is_guarded(lap)
    assert not is_guarded(Guarded(lap, first_feature_class, max_resample=0))
    assert is_guarded(AnomiGANAnonymizer(_untrained_encoder(), first_feature_class))
    assert not is_guarded(AnomiGANAnonymizer(_untrained_encoder()))
    # a guarded Laplace release carries no ε: the re-draws depend on the record
    assert "epsilon_per_feature" not in guarded.params()


def test_laplace_draws_the_distribution_of_diffprivlibs_mechanism():
    from diffprivlib.mechanisms import Laplace
    from scipy.stats import ks_2samp

    mech = Laplace(epsilon=1 / 0.3, sensitivity=1.0, random_state=np.random.RandomState(0))
    reference = np.array([mech.randomise(0.0) for _ in range(4000)])
    ours = LaplaceDP(0.3).anonymize(np.zeros((4000, 1)), seed=0).ravel()
    assert ks_2samp(reference, ours).pvalue > 0.01
    assert (
        ks_2samp(reference, LaplaceDP(0.6).anonymize(np.zeros((4000, 1)), 0).ravel()).pvalue < 1e-6
    )
