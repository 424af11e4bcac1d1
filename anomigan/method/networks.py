"""Networks of AnomiGAN: the Conv1D encoder E(x, r), the linkage discriminator D1 and a critic.

The encoder follows the paper (Conv1D 64/32/16/8/16/32/64, batch norm + tanh, sigmoid output back
to model space [0, 1]^d) but takes the record x and the fresh randomness r as two input channels,
so that the output can depend on r (the paper's M(r ⊕ x)). Hidden activations are exposed so that
per-layer variances can be recorded and per-layer noise added at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import layers

#: (filters, kernel) of the 7 hidden Conv1D layers: the paper's 64/32/16/8 then the mirror
#: 16/32/64. The paper gives no mirror kernels; kernel 2 keeps inference fast (see method notes).
HIDDEN_SPEC: tuple[tuple[int, int], ...] = (
    (64, 4),
    (32, 2),
    (16, 2),
    (8, 2),
    (16, 2),
    (32, 2),
    (64, 2),
)


@keras.saving.register_keras_serializable(package="anomigan")
class Encoder(keras.Model):
    """E(x, r) -> x^ of the same shape; `layer_noise[i]` is added after hidden layer i's tanh."""

    n_hidden_layers: int = len(HIDDEN_SPEC)

    def __init__(self, n_features: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_features = int(n_features)
        self.convs = [
            layers.Conv1D(f, k, padding="same", name=f"conv{i}")
            for i, (f, k) in enumerate(HIDDEN_SPEC)
        ]
        self.norms = [layers.BatchNormalization(name=f"bn{i}") for i in range(len(HIDDEN_SPEC))]
        self.out_conv = layers.Conv1D(1, 1, activation="sigmoid", name="out")

    @property
    def hidden_shapes(self) -> list[tuple[int, int]]:
        """(length, channels) of each hidden activation; the shape of its variance array."""
        return [(self.n_features, f) for f, _ in HIDDEN_SPEC]

    def forward(
        self,
        x: tf.Tensor,
        r: tf.Tensor,
        layer_noise: Sequence[tf.Tensor | None] | None = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Return (x^, hidden activations after noise); used in training and for variance
        recording (inference runs on the folded weights: `anomigan.method.inference`)."""
        h = tf.stack([tf.cast(x, tf.float32), tf.cast(r, tf.float32)], axis=-1)  # (B, d, 2)
        hidden = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = tf.tanh(bn(conv(h), training=training))
            if layer_noise is not None and layer_noise[i] is not None:
                h = h + layer_noise[i]
            hidden.append(h)
        return tf.squeeze(self.out_conv(h), axis=-1), hidden

    def call(
        self,
        x: tf.Tensor,
        r: tf.Tensor,
        layer_noise: Sequence[tf.Tensor | None] | None = None,
        training: bool = False,
    ) -> tf.Tensor:
        return self.forward(x, r, layer_noise=layer_noise, training=training)[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "n_features": self.n_features}


def build_encoder(n_features: int) -> Encoder:
    """Build and initialise the encoder (weights created so it can be saved/loaded at once)."""
    enc = Encoder(n_features, name="encoder")
    z = tf.zeros((1, n_features))
    enc(z, z)
    return enc


def linker_features(x: tf.Tensor, z: tf.Tensor, x_hat: tf.Tensor) -> tf.Tensor:
    """D1 input: candidate x, its re-anonymisation z = E(x, r''), released x^ and their gaps."""
    return tf.concat([x, z, x_hat, tf.square(x_hat - z), tf.square(x_hat - x)], axis=-1)


def build_linker(n_features: int, width: int = 64) -> keras.Model:
    """D1: P(x^ was produced from candidate x), given (x, z, x^) as `linker_features` (5d)."""
    inp = keras.Input((5 * n_features,))
    h = layers.Dense(width)(inp)
    h = layers.LeakyReLU(0.2)(h)
    h = layers.Dense(width)(h)
    h = layers.LeakyReLU(0.2)(h)
    out = layers.Dense(1, activation="sigmoid")(h)
    return keras.Model(inp, out, name="linker")


def build_critic(n_features: int, width: int = 64) -> keras.Model:
    """Realism critic on x^ alone: P(record is real), keeps x^ on the data distribution."""
    inp = keras.Input((n_features,))
    h = layers.Dense(width)(inp)
    h = layers.LeakyReLU(0.2)(h)
    h = layers.Dense(width)(h)
    h = layers.LeakyReLU(0.2)(h)
    out = layers.Dense(1, activation="sigmoid")(h)
    return keras.Model(inp, out, name="critic")
