"""Per-layer activation variances recorded in training and the paper's inference-time noise.

At inference, zero-mean Gaussian noise with variance `noise_scale * var_l` (per position and
channel) is added to hidden layer l for a random subset of layers chosen independently per record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
        np.savez(path, **{f"layer{i}": a for i, a in enumerate(self.arrays)})

    @classmethod
    def load(cls, path: str | Path) -> LayerVariances:
        with np.load(path) as f:
            return cls([f[f"layer{i}"].astype(np.float32) for i in range(len(f.files))])


class VarianceAccumulator:
    """Streaming (Welford-style, batched) per-element variance over a pass of batches."""

    def __init__(self, shapes: list[tuple[int, ...]]) -> None:
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


def layer_mask(
    seed: tf.Tensor, batch: tf.Tensor, n_layers: int, n_noisy: tf.Tensor, fixed_layer: tf.Tensor
) -> tf.Tensor:
    """(batch, n_layers) 0/1 mask: `n_noisy` random layers per record, or `fixed_layer` if >= 0."""
    u = tf.random.stateless_uniform(tf.stack([batch, n_layers]), seed=seed)
    rank = tf.argsort(tf.argsort(u, axis=1), axis=1)
    random_mask = tf.cast(rank < tf.cast(n_noisy, rank.dtype), tf.float32)
    fixed_mask = tf.one_hot(tf.fill([batch], tf.maximum(fixed_layer, 0)), n_layers)
    return tf.cond(fixed_layer >= 0, lambda: fixed_mask, lambda: random_mask)


def gaussian_layer_noise(
    seed: tf.Tensor, mask: tf.Tensor, stds: list[tf.Tensor], scale: tf.Tensor
) -> list[tf.Tensor]:
    """Zero-mean noise per layer: mask[:, l] * sqrt(scale) * std_l * N(0, 1)."""
    seeds = tf.random.experimental.stateless_split(seed, len(stds))
    batch = tf.shape(mask)[0]
    out = []
    for i, std in enumerate(stds):
        shape = tf.concat([[batch], tf.shape(std)], axis=0)
        eps = tf.random.stateless_normal(shape, seed=seeds[i])
        out.append(eps * std * tf.sqrt(scale) * mask[:, i, None, None])
    return out


def sparse_noise_fn(
    seed: tf.Tensor, mask: tf.Tensor, stds: list[tf.Tensor], scale: tf.Tensor
) -> Callable[[int, tf.Tensor], tf.Tensor]:
    """Same distribution as `gaussian_layer_noise`, but draws normals only for the rows whose
    layer is selected (about n_noisy/7 of them), which is what makes inference fast."""
    seeds = tf.random.experimental.stateless_split(seed, len(stds))

    def fn(i: int, h: tf.Tensor) -> tf.Tensor:
        rows = tf.where(mask[:, i] > 0)
        shape = tf.concat([tf.shape(rows, out_type=tf.int32)[:1], tf.shape(stds[i])], axis=0)
        eps = tf.random.stateless_normal(shape, seed=seeds[i]) * stds[i] * tf.sqrt(scale)
        return tf.tensor_scatter_nd_add(h, rows, eps)

    return fn
