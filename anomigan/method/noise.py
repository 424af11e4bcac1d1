"""Per-layer activation variances recorded in training and the paper's inference-time noise.

At inference, zero-mean Gaussian noise with variance `noise_scale * var_l` (per position and
channel) is added to hidden layer l for a random subset of layers chosen independently per record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf


@dataclass
class LayerVariances:
    """Variance of each hidden layer's activations, one (length, channels) array per layer."""

    arrays: list[np.ndarray]

    @property
    def n_layers(self) -> int:
        return len(self.arrays)

    def mean_variances(self) -> list[float]:
        return [float(np.mean(a)) for a in self.arrays]

    def to_json(self) -> str:
        """Summary for logging: per-layer mean variance and shapes."""
        return json.dumps(
            {
                "n_layers": self.n_layers,
                "mean_variance": self.mean_variances(),
                "shapes": [list(a.shape) for a in self.arrays],
            }
        )

    def save_npz(self, path: str | Path) -> None:
        arrays: dict[str, Any] = {f"layer{i}": a for i, a in enumerate(self.arrays)}
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> LayerVariances:
        with np.load(path) as f:
            return cls([f[f"layer{i}"].astype(np.float32) for i in range(len(f.files))])


class VarianceAccumulator:
    """Streaming (Welford-style, batched) per-element variance over a pass of batches."""

    def __init__(self, shapes: Sequence[tuple[int, ...]]) -> None:
        self.n = 0
        self.mean = [np.zeros(s, np.float64) for s in shapes]
        self.m2 = [np.zeros(s, np.float64) for s in shapes]

    def update(self, hidden: list[np.ndarray]) -> None:
        nb = hidden[0].shape[0]
        for i, h in enumerate(hidden):
            h = h.astype(np.float64)
            bmean = h.mean(axis=0)
            bm2 = ((h - bmean) ** 2).sum(axis=0)
            delta = bmean - self.mean[i]
            tot = self.n + nb
            self.mean[i] += delta * nb / tot
            self.m2[i] += bm2 + delta**2 * self.n * nb / tot
        self.n += nb

    def result(self) -> LayerVariances:
        return LayerVariances([(m2 / max(self.n - 1, 1)).astype(np.float32) for m2 in self.m2])


def draw_layer_patterns(
    rng: np.random.Generator, n: int, n_layers: int, n_noisy: int, fixed_layer: int | None
) -> np.ndarray:
    """Which hidden layers get noise, per record, as a bit pattern (bit l = layer l).

    Drawn independently per record and per call: `n_noisy` distinct random layers, or the one
    `fixed_layer` (the paper's Table 1).
    """
    if fixed_layer is not None:
        if not 0 <= fixed_layer < n_layers:
            raise ValueError(f"fixed_layer must be in [0, {n_layers - 1}], got {fixed_layer}")
        return np.full(n, 1 << fixed_layer, np.int64)
    if n_noisy <= 0:
        return np.zeros(n, np.int64)
    chosen = np.argsort(rng.random((n, n_layers)), axis=1)[:, : min(n_noisy, n_layers)]
    return (1 << chosen).sum(axis=1)


def standard_normal(shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """N(0, 1) samples of `shape` by the Box-Muller transform of stateless uniforms.

    The same distribution as `tf.random.stateless_normal`, faster on CPU (that op runs a scalar
    Box-Muller loop per pair; here the transform is vectorised), and the noise is
    the largest cost of anonymising in bulk. 1 - u lies in (0, 1], so the log is finite.
    """
    n = tf.reduce_prod(shape)
    u = tf.random.stateless_uniform(tf.stack([2, (n + 1) // 2]), seed=seed)
    radius = tf.sqrt(-2.0 * tf.math.log1p(-u[0]))
    angle = (2.0 * np.pi) * u[1]
    pairs = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)
    return tf.reshape(pairs[:n], shape)


def possible_patterns(n_layers: int, n_noisy: int, fixed_layer: int | None) -> tuple[int, ...]:
    """Every pattern `draw_layer_patterns` can return with these settings, ascending."""
    if fixed_layer is not None:
        return (1 << fixed_layer,)
    if n_noisy <= 0:
        return (0,)
    k = min(n_noisy, n_layers)
    return tuple(sorted(sum(1 << i for i in c) for c in combinations(range(n_layers), k)))


def layer_noise_fn(
    pattern: int, seeds: tf.Tensor, stds: list[tf.Tensor], scale: tf.Tensor
) -> Callable[[int, tf.Tensor], tf.Tensor]:
    """`noise_fn(i, h)` for `FoldedEncoder.tf_forward` on rows that all share `pattern`: adds
    zero-mean Gaussian noise of variance scale·var_i to hidden layer i if bit i is set.

    A batch is split into one segment of rows per pattern, so the noise is a dense add on
    exactly the rows that get it (scattering it into the whole batch copied every layer's
    activations, measurably slower).
    """

    def fn(i: int, h: tf.Tensor) -> tf.Tensor:
        if not pattern >> i & 1:
            return h
        return h + standard_normal(tf.shape(h), seeds[i]) * (stds[i] * tf.sqrt(scale))

    return fn
