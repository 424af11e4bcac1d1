"""Layer-pattern draws and the Gaussian sampler behind the inference-time noise."""

import numpy as np
import pytest
import tensorflow as tf

from anomigan.method.noise import draw_layer_patterns, possible_patterns, standard_normal


@pytest.mark.parametrize("shape", [(200_001,), (1000, 30, 7), (3,)])
def test_standard_normal_is_standard_normal(shape: tuple[int, ...]) -> None:
    z = standard_normal(tf.constant(shape), tf.constant([4, 2], tf.int64)).numpy()
    assert z.shape == shape and z.dtype == np.float32 and np.isfinite(z).all()
    if z.size > 1000:
        assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
        kurtosis = ((z - z.mean()) ** 4).mean() / z.var() ** 2
        assert abs(kurtosis - 3.0) < 0.05  # Gaussian tails, not uniform (1.8) or heavier
        # each position (first half: cosines, second half: sines) is N(0, 1) as well
        flat = z.reshape(-1)
        assert abs(flat[: flat.size // 2].std() - flat[flat.size // 2 :].std()) < 0.02


def test_standard_normal_is_seeded() -> None:
    a, b, c = (
        standard_normal(tf.constant([50]), tf.constant(s, tf.int64)).numpy()
        for s in ([1, 2], [1, 2], [1, 3])
    )
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.1


def test_layer_patterns() -> None:
    rng = np.random.default_rng(0)
    one = draw_layer_patterns(rng, 7000, 7, 1, None)
    assert set(np.unique(one)) == {1 << i for i in range(7)}  # one layer each, all used
    three = draw_layer_patterns(rng, 100, 7, 3, None)
    assert all(bin(p).count("1") == 3 for p in three)
    assert set(draw_layer_patterns(rng, 10, 7, 1, 4)) == {16}
    assert not draw_layer_patterns(rng, 10, 7, 0, None).any()
    with pytest.raises(ValueError, match="fixed_layer"):
        draw_layer_patterns(rng, 10, 7, 1, 7)


@pytest.mark.parametrize(
    "n_noisy, fixed_layer",
    [(1, None), (2, None), (3, None), (7, None), (9, None), (0, None), (1, 4)],
)
def test_possible_patterns_are_the_drawn_ones(n_noisy: int, fixed_layer: int | None) -> None:
    """The TF pass has a segment for each possible pattern: every drawn one must be there."""
    drawn = draw_layer_patterns(np.random.default_rng(0), 20_000, 7, n_noisy, fixed_layer)
    assert tuple(np.unique(drawn)) == possible_patterns(7, n_noisy, fixed_layer)
