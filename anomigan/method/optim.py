"""Adam as one fused kernel per variable, for AnomiGAN's explicit training step.

Keras's Adam builds its update from about forty small ops per variable (bias corrections,
moment updates, casts); in a step of three networks that was 40 % of the graph, and each op
costs the executor the same whether its tensor holds 8 numbers or 8 million.
`ResourceApplyAdam` is the same update (Keras's formulation: lr·√(1-β2^t)/(1-β1^t) applied to
m/(√v + ε)) in one op per variable.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


class FusedAdam:
    """Adam over a fixed list of variables (Keras's defaults for β2 and ε)."""

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        learning_rate: float,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        self.variables = list(variables)
        self.lr, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.beta_1_power = tf.Variable(1.0, trainable=False)
        self.beta_2_power = tf.Variable(1.0, trainable=False)

    def apply(self, grads: Sequence[tf.Tensor | None]) -> None:
        """One update of every variable from its gradient (None: left as it is)."""
        b1p = self.beta_1_power.assign(self.beta_1_power * self.beta_1)
        b2p = self.beta_2_power.assign(self.beta_2_power * self.beta_2)
        for var, m, v, g in zip(self.variables, self.m, self.v, grads, strict=True):
            if g is None:
                continue
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle,
                m=m.handle,
                v=v.handle,
                beta1_power=b1p,
                beta2_power=b2p,
                lr=tf.constant(self.lr, tf.float32),
                beta1=tf.constant(self.beta_1, tf.float32),
                beta2=tf.constant(self.beta_2, tf.float32),
                epsilon=tf.constant(self.epsilon, tf.float32),
                grad=g,
            )
