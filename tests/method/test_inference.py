"""The folded inference passes (numpy and TensorFlow) agree with the Keras networks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from anomigan.method.inference import DenseStack, FoldedEncoder
from anomigan.method.networks import build_encoder
from anomigan.method.target import TargetConfig, build_target

D = 13  # odd, so the "same" padding of the even kernels is exercised at both ends


@pytest.fixture(scope="module")
def encoder():
    """An encoder with non-trivial weights and batch-norm statistics (as after training)."""
    keras.utils.set_random_seed(3)
    enc = build_encoder(D)
    rng = np.random.default_rng(3)
    for bn in enc.norms:
        c = bn.gamma.shape[0]
        bn.set_weights(
            [
                rng.uniform(0.5, 1.5, c),
                rng.normal(0, 0.2, c),
                rng.normal(0, 0.3, c),
                rng.uniform(0.2, 2.0, c),
            ]
        )
    return enc


def test_encoder_forward_matches_keras(encoder) -> None:
    rng = np.random.default_rng(0)
    x, r = rng.random((9, D), dtype=np.float32), rng.random((9, D), dtype=np.float32)
    expected = encoder.forward(tf.constant(x), tf.constant(r))[0].numpy()
    folded = FoldedEncoder.from_keras(encoder)
    got = folded.forward(x, r)
    assert got.dtype == np.float32 and got.shape == (9, D)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    in_tf = tf.function(folded.tf_forward())(tf.constant(x), tf.constant(r)).numpy()
    np.testing.assert_allclose(in_tf, expected, atol=2e-6)


def test_encoder_layer_noise_matches_keras(encoder) -> None:
    rng = np.random.default_rng(1)
    x, r = rng.random((4, D), dtype=np.float32), rng.random((4, D), dtype=np.float32)
    noise = [None] * 7
    noise[0] = rng.normal(0, 0.3, (4, *encoder.hidden_shapes[0])).astype(np.float32)
    noise[5] = rng.normal(0, 0.3, (4, *encoder.hidden_shapes[5])).astype(np.float32)
    expected = encoder.forward(tf.constant(x), tf.constant(r), layer_noise=noise)[0].numpy()

    def add(i: int, h: np.ndarray) -> None:
        if noise[i] is not None:
            h += noise[i]

    folded = FoldedEncoder.from_keras(encoder)
    got = folded.forward(x, r, add)
    np.testing.assert_allclose(got, expected, atol=2e-6)

    def add_tf(i: int, h: tf.Tensor) -> tf.Tensor:  # h is (n, 1, d, c) in the TF pass
        return h if noise[i] is None else h + noise[i][:, None]

    in_tf = tf.function(folded.tf_forward())(tf.constant(x), tf.constant(r), add_tf).numpy()
    np.testing.assert_allclose(in_tf, expected, atol=2e-6)
    assert np.abs(got - FoldedEncoder.from_keras(encoder).forward(x, r)).max() > 1e-3


def test_dense_stack_matches_target() -> None:
    keras.utils.set_random_seed(0)
    model = build_target(D, 3, TargetConfig())
    x = np.random.default_rng(2).random((6, D), dtype=np.float32)
    stack = DenseStack.from_keras(model)
    assert stack is not None
    np.testing.assert_allclose(stack.forward(x), model(x, training=False).numpy(), atol=1e-6)


def test_dense_stack_refuses_other_layers() -> None:
    model = keras.Sequential(
        [keras.Input((D,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)]
    )
    assert DenseStack.from_keras(model) is None
    gelu = keras.Sequential([keras.Input((D,)), keras.layers.Dense(2, activation="gelu")])
    assert DenseStack.from_keras(gelu) is None
