"""Inference passes of the frozen networks: folded weights, numpy for a few rows, TF for many.

After training the encoder is a fixed function, so its batch norm folds into the convolutions
(inference-mode batch norm is an affine map). Two passes share those weights:

- numpy, for batches of at most `SMALL_BATCH` rows: a TensorFlow call has a fixed cost however
  few rows it carries, which would dominate a served single-record request, and numpy answers
  one record in a fraction of it. The target's forward pass (for the prediction guard) too.
- TensorFlow ops on 4-D tensors (`conv2d` + `bias_add` + `tanh`), which oneDNN runs as one
  fused primitive per layer: faster than the Keras layers' conv1d + batch norm.

Tests hold both equal to the Keras networks to float32 round-off; the timings behind these
choices are in docs/method.md ("Inference speed") and bench/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

#: Batches of at most this many rows run in numpy; beyond it TensorFlow's multi-threaded
#: kernels win (the crossover measured on 2 cores; docs/method.md).
SMALL_BATCH = 64

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),  # no overflow for large |z|
    "softmax": lambda z: _softmax(z),
}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _conv_same(h: np.ndarray, kernel: np.ndarray, left: int) -> np.ndarray:
    """Keras `Conv1D(padding="same")` without bias: h (n, length, c_in), kernel (k, c_in, c_out).

    Tap j reads position t + j - left; positions outside the record are zero padding.
    """
    length = h.shape[1]
    out = h @ kernel[left]
    for j in range(kernel.shape[0]):
        off = j - left
        if off > 0:
            out[:, : length - off] += h[:, off:] @ kernel[j]
        elif off < 0:
            out[:, -off:] += h[:, : length + off] @ kernel[j]
    return out


@dataclass
class FoldedEncoder:
    """The encoder's inference pass: per hidden layer (kernel, bias, left padding) with batch
    norm folded in, then the 1x1 sigmoid output convolution."""

    hidden: list[tuple[np.ndarray, np.ndarray, int]]
    out_kernel: np.ndarray  # (c, 1)
    out_bias: np.ndarray  # (1,)

    @classmethod
    def from_keras(cls, encoder) -> FoldedEncoder:
        """Read `networks.Encoder` weights; inference-mode batch norm is an affine map."""
        hidden = []
        for conv, bn in zip(encoder.convs, encoder.norms, strict=True):
            kernel, bias = (np.asarray(w, np.float64) for w in conv.get_weights())
            gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
            scale = gamma / np.sqrt(var + bn.epsilon)
            left = (kernel.shape[0] - 1) // 2  # TensorFlow puts the odd padding on the right
            hidden.append(
                (
                    (kernel * scale).astype(np.float32),
                    ((bias - mean) * scale + beta).astype(np.float32),
                    left,
                )
            )
        out_kernel, out_bias = encoder.out_conv.get_weights()
        return cls(hidden, out_kernel[0].astype(np.float32), out_bias.astype(np.float32))

    def forward(
        self,
        x: np.ndarray,
        r: np.ndarray,
        noise_fn: Callable[[int, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """x^ = E(x, r) for (n, d) float32 arrays; `noise_fn(i, h)` may perturb hidden layer i
        in place (after its tanh), as `Encoder.forward`'s `layer_noise` adds to it."""
        h = np.stack([x, r], axis=-1).astype(np.float32, copy=False)
        for i, (kernel, bias, left) in enumerate(self.hidden):
            h = _conv_same(h, kernel, left)
            h += bias
            np.tanh(h, out=h)
            if noise_fn is not None:
                noise_fn(i, h)
        z = (h @ self.out_kernel)[..., 0] + self.out_bias[0]
        return _ACTIVATIONS["sigmoid"](z).astype(np.float32, copy=False)

    def tf_forward(self) -> Callable:
        """`forward(x, r, noise_fn)` in TensorFlow ops, to be traced inside a `tf.function`;
        `noise_fn(i, h)` returns hidden layer i perturbed (h is (n, 1, length, channels))."""
        hidden = [(tf.constant(k[None]), tf.constant(b)) for k, b, _ in self.hidden]
        out_kernel = tf.constant(self.out_kernel[None, None])
        out_bias = tf.constant(self.out_bias)

        def forward(x, r, noise_fn=None):  # noqa: ANN001, ANN202
            h = tf.stack([x, r], axis=-1)[:, None]  # (n, 1, d, 2): conv2d's fused kernels
            for i, (kernel, bias) in enumerate(hidden):
                # TensorFlow's "SAME" pads (k - 1) // 2 on the left, like `left` above
                h = tf.tanh(tf.nn.bias_add(tf.nn.conv2d(h, kernel, 1, "SAME"), bias))
                if noise_fn is not None:
                    h = noise_fn(i, h)
            z = tf.nn.bias_add(tf.nn.conv2d(h, out_kernel, 1, "VALID"), out_bias)
            return tf.sigmoid(z)[:, 0, :, 0]

        return forward


@dataclass
class DenseStack:
    """A Keras model made only of Dense (and inert Dropout/Input) layers, e.g. the target."""

    layers: list[tuple[np.ndarray, np.ndarray, str]]

    @classmethod
    def from_keras(cls, model) -> DenseStack | None:
        """The model's Dense layers in order, or None if it holds anything else (TensorFlow
        then serves every batch size)."""
        layers = []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer | keras.layers.Dropout):
                continue  # dropout is inactive at inference
            if not isinstance(layer, keras.layers.Dense):
                return None
            activation = layer.get_config().get("activation")
            if not isinstance(activation, str) or activation not in _ACTIVATIONS:
                return None
            kernel, bias = layer.get_weights()
            layers.append((kernel.astype(np.float32), bias.astype(np.float32), activation))
        return cls(layers) if layers else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float32)
        for kernel, bias, activation in self.layers:
            h = _ACTIVATIONS[activation](h @ kernel + bias)
        return h.astype(np.float32, copy=False)
