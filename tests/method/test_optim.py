"""FusedAdam is Keras's Adam: the same trajectory from the same gradients."""

import keras
import numpy as np
import tensorflow as tf

from anomigan.method.optim import FusedAdam


def test_fused_adam_follows_keras_adam() -> None:
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    ours, theirs = tf.Variable(start), tf.Variable(start)
    fused = FusedAdam([ours], 1e-2, beta_1=0.5)
    reference = keras.optimizers.Adam(1e-2, beta_1=0.5)
    for _ in range(20):
        g = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))
        fused.apply([g])
        reference.apply_gradients([(g, theirs)])
    assert not np.allclose(ours.numpy(), start)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_a_missing_gradient_leaves_its_variable() -> None:
    a, b = tf.Variable([1.0, 2.0]), tf.Variable([3.0])
    FusedAdam([a, b], 0.1).apply([tf.constant([1.0, 1.0]), None])
    np.testing.assert_allclose(b.numpy(), [3.0])
    assert np.all(a.numpy() < [1.0, 2.0])
