"""The anonymiser protocol: Laplace DP, identity, class prototype and AnomiGAN's guard."""

from __future__ import annotations

import numpy as np
import pytest

from anomigan.anonymizers import (
    AnomiGANAnonymizer,
    Anonymizer,
    ClassPrototype,
    Identity,
    LaplaceDP,
)
from anomigan.gan import GANConfig, TrainedEncoder
from anomigan.networks import build_encoder
from anomigan.noise import LayerVariances

RNG = np.random.default_rng(0)
X = RNG.uniform(size=(400, 12)).astype(np.float32)


def first_feature_class(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x)[:, 0] > 0.5).astype(int)


def test_every_anonymizer_follows_the_protocol():
    untrained = _untrained_encoder()
    for anon in (
        Identity(),
        LaplaceDP(0.3),
        ClassPrototype.fit(X, first_feature_class),
        AnomiGANAnonymizer(untrained, first_feature_class),
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
