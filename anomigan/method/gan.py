"""AnomiGAN training: encoder E(x, r) against an oracle-aware linker D1, a realism critic and a
frozen target classifier D2; plus the trained anonymiser with the paper's per-layer noise.

Encoder objective per step (B records x with predicted classes y = argmax D2(x)):

    L_E = λe·(1-δ)·mean_i ||x_i - x^_i||_2
          + λd·( w_d2·CE(y, D2(x^)) + δ·(w_link·L_link + w_nce·(L_nce_oracle + L_nce_orig))
                 + w_real·L_real )

with x^ = E(x, r), r ~ U[0,1]^d fresh per record and step. See `AnomiGAN.train_step`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from anomigan.method.inference import SMALL_BATCH, FoldedEncoder
from anomigan.method.networks import build_critic, build_encoder, build_linker, linker_features
from anomigan.method.noise import (
    LayerVariances,
    VarianceAccumulator,
    draw_layer_patterns,
    layer_noise_fn,
    possible_patterns,
)


@dataclass
class GANConfig:
    """Hyper-parameters; paper values for lambda_e, lambda_d, delta, batch_size, lr, beta_1."""

    lambda_e: float = 0.5  # weight of the closeness term d(x, x^) (scaled by 1 - delta)
    lambda_d: float = 0.5  # weight of the adversarial/target terms
    delta: float = 0.3  # privacy level in [0, 1]: weight of the privacy terms, inference noise
    steps: int = 4000
    batch_size: int = 10  # paper value; records whose x^ enter the losses each step
    n_ref: int = 64  # extra training records per step: same-class negatives / attack candidates
    lr: float = 1e-3
    beta_1: float = 0.5
    seed: int | None = None
    w_d2: float = 3.0  # multiplier on L_D2 (paper: 1); 1 gave agreement 0.936 < 0.95
    w_real: float = 0.2  # realism critic weight (1.0 slides back towards identity)
    w_link: float = 1.0  # adversarial linker D1 inside the privacy term
    w_nce: float = 1.0  # soft (InfoNCE) nearest-record attacks inside the privacy term
    tau: float = 0.1  # soft-attack temperature, relative to the batch's mean squared distance
    log_every: int = 100
    variance_passes: int = 4  # passes over the training set (fresh r) to record layer variances

    @classmethod
    def from_dict(cls, d: dict) -> GANConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _bce(label: float, p: tf.Tensor) -> tf.Tensor:
    p = tf.clip_by_value(p, 1e-7, 1.0 - 1e-7)
    return -tf.reduce_mean(label * tf.math.log(p) + (1.0 - label) * tf.math.log(1.0 - p))


def soft_attack_loss(
    queries: tf.Tensor, keys: tf.Tensor, q_cls: tf.Tensor, k_cls: tf.Tensor, tau: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Differentiable nearest-record attack: query i's true key is key i; candidates are same-class
    keys. Returns (mean excess of the attack's log-probability of the true key over chance,
    relu(log p_ii + log n_i), so 0 means no better than guessing and the encoder is not pushed
    to make all records equidistant, i.e. to collapse; share of queries whose nearest same-class
    key is their own)."""
    dist = tf.reduce_mean(tf.square(queries[:, None, :] - keys[None, :, :]), axis=-1)  # (B, K)
    mask = tf.cast(q_cls[:, None] == k_cls[None, :], tf.float32)
    scale = tf.stop_gradient(tf.reduce_sum(dist * mask) / tf.reduce_sum(mask) + 1e-8)
    logits = -dist / (tau * scale) - 1e9 * (1.0 - mask)
    logp = tf.nn.log_softmax(logits, axis=-1)
    n = tf.reduce_sum(mask, axis=-1)
    nq = tf.shape(queries)[0]
    excess = tf.nn.relu(tf.linalg.diag_part(logp[:, :nq]) + tf.math.log(n))
    top1 = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32) == tf.range(nq), tf.float32)
    return tf.reduce_mean(excess), tf.reduce_mean(top1)


class AnomiGAN(keras.Model):
    """Encoder + D1 (linker) + realism critic + frozen target, with a custom train step."""

    def __init__(
        self, x_train: np.ndarray, target: keras.Model, config: GANConfig, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        x_train = np.clip(np.asarray(x_train, np.float32), 0.0, 1.0)
        self.n_features = x_train.shape[1]
        self.target = target
        self.target.trainable = False
        y = np.argmax(np.asarray(target(x_train, training=False)), axis=1).astype(np.int32)
        self.x_data = tf.constant(x_train)
        self.y_data = tf.constant(y)
        # class-indexed table for sampling same-predicted-class negatives inside the graph
        classes = np.unique(y)
        n_cls = int(y.max()) + 1
        counts = np.array([np.sum(y == c) for c in range(n_cls)], np.int32)
        table = np.zeros((n_cls, max(counts.max(), 1)), np.int32)
        for c in classes:
            idx = np.flatnonzero(y == c)
            table[c, : len(idx)] = idx
        self.cls_table = tf.constant(table)
        self.cls_counts = tf.constant(counts)
        self.encoder = build_encoder(self.n_features)
        self.linker = build_linker(self.n_features)
        self.critic = build_critic(self.n_features)
        self.gen = (
            tf.random.Generator.from_seed(config.seed)
            if config.seed is not None
            else tf.random.Generator.from_non_deterministic_state()
        )

        def adam() -> keras.optimizers.Optimizer:
            return keras.optimizers.Adam(config.lr, beta_1=config.beta_1)

        self.opt_e, self.opt_l, self.opt_c = adam(), adam(), adam()
        self.opt_e.build(self.encoder.trainable_variables)
        self.opt_l.build(self.linker.trainable_variables)
        self.opt_c.build(self.critic.trainable_variables)

    def _sample(self) -> dict[str, tf.Tensor]:
        cfg, d = self.config, self.n_features
        n = tf.shape(self.x_data)[0]
        b, k = cfg.batch_size, cfg.n_ref
        idx = self.gen.uniform([b], 0, n, dtype=tf.int32)
        y = tf.gather(self.y_data, idx)
        cnt = tf.gather(self.cls_counts, y)
        j = tf.cast(self.gen.uniform([b]) * tf.cast(cnt, tf.float32), tf.int32)
        neg = tf.gather_nd(self.cls_table, tf.stack([y, tf.minimum(j, cnt - 1)], axis=1))
        ref = self.gen.uniform([k], 0, n, dtype=tf.int32)
        return {
            "x": tf.gather(self.x_data, idx),
            "y": y,
            "x_neg": tf.gather(self.x_data, neg),
            "x_ref": tf.gather(self.x_data, ref),
            "y_ref": tf.gather(self.y_data, ref),
            "r": self.gen.uniform([3 * b + k, d]),
        }

    def train_step(self, data: object = None) -> dict[str, tf.Tensor]:
        """One alternating step: D1 and critic update on the current x^, then the encoder update
        scored by the updated D1/critic (one encoder forward pass shared by both)."""
        cfg = self.config
        b = cfg.batch_size
        s = self._sample()
        x, y, x_ref, y_ref = s["x"], s["y"], s["x_ref"], s["y_ref"]
        with tf.GradientTape() as tape_e:
            # one batch-norm batch: x^ = E(x, r), z = E(x, r'') (the adversary's re-anonymisation),
            # x^_neg = E(x', r) for x' of the same predicted class, z_ref = E(x_ref, r_ref)
            inp = tf.concat([x, x, s["x_neg"], x_ref], axis=0)
            out = self.encoder(inp, s["r"], training=True)
            xh, z, xh_neg, z_ref = out[:b], out[b : 2 * b], out[2 * b : 3 * b], out[3 * b :]
            pos_f = linker_features(x, z, xh)
            neg_f = linker_features(x, z, xh_neg)
            with tf.GradientTape(persistent=True) as tape_d:
                l_lnk = _bce(1.0, self.linker(tf.stop_gradient(pos_f))) + _bce(
                    0.0, self.linker(tf.stop_gradient(neg_f))
                )
                l_crit = _bce(1.0, self.critic(x_ref[:b])) + _bce(
                    0.0, self.critic(tf.stop_gradient(xh))
                )
            lv, cv = self.linker.trainable_variables, self.critic.trainable_variables
            self.opt_l.apply_gradients(zip(tape_d.gradient(l_lnk, lv), lv, strict=True))
            self.opt_c.apply_gradients(zip(tape_d.gradient(l_crit, cv), cv, strict=True))
            del tape_d

            close = tf.reduce_mean(tf.sqrt(tf.reduce_sum(tf.square(x - xh), axis=1) + 1e-8))
            probs = self.target(xh, training=False)
            l_d2 = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probs))
            # encoder wants D1 wrong on both: positives called unlinked, negatives linked
            l_link = _bce(0.0, self.linker(pos_f)) + _bce(1.0, self.linker(neg_f))
            l_real = _bce(1.0, self.critic(xh))
            keys_y = tf.concat([y, y_ref], axis=0)
            nce_o, top1_o = soft_attack_loss(xh, tf.concat([z, z_ref], axis=0), y, keys_y, cfg.tau)
            nce_x, top1_x = soft_attack_loss(xh, tf.concat([x, x_ref], axis=0), y, keys_y, cfg.tau)
            privacy = cfg.w_link * l_link + cfg.w_nce * (nce_o + nce_x)
            l_e = cfg.lambda_e * (1.0 - cfg.delta) * close + cfg.lambda_d * (
                cfg.w_d2 * l_d2 + cfg.delta * privacy + cfg.w_real * l_real
            )
        ev = self.encoder.trainable_variables
        self.opt_e.apply_gradients(zip(tape_e.gradient(l_e, ev), ev, strict=True))
        agree = tf.reduce_mean(
            tf.cast(tf.argmax(probs, axis=1, output_type=tf.int32) == y, tf.float32)
        )
        return {
            "loss_encoder": l_e,
            "loss_linker": l_lnk,
            "loss_critic": l_crit,
            "dist": close,
            "loss_d2": l_d2,
            "loss_link_enc": l_link,
            "loss_real_enc": l_real,
            "nce_oracle": nce_o,
            "nce_orig": nce_x,
            "top1_oracle": top1_o,
            "top1_orig": top1_x,
            "agreement": agree,
            "r_std": tf.reduce_mean(tf.abs(xh - z)),
        }

    def record_variances(self, passes: int) -> LayerVariances:
        """Variance of each hidden activation over the training set x fresh r (inference mode)."""
        enc = self.encoder

        @tf.function
        def hidden(xb: tf.Tensor, r: tf.Tensor) -> list[tf.Tensor]:
            return enc.forward(xb, r, training=False)[1]

        acc = VarianceAccumulator(enc.hidden_shapes)
        for _ in range(passes):
            for start in range(0, int(self.x_data.shape[0]), 4096):
                xb = self.x_data[start : start + 4096]
                acc.update([h.numpy() for h in hidden(xb, self.gen.uniform(tf.shape(xb)))])
        return acc.result()


#: Rows of each pattern segment in the TensorFlow pass are padded to a multiple of this.
SEGMENT_ROWS = 64


@dataclass
class TrainedEncoder:
    """A trained anonymiser: encoder weights, recorded layer variances, config and loss history."""

    encoder: keras.Model
    variances: LayerVariances
    config: GANConfig
    history: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # inference runs on the folded weights (frozen once training is over), built on first use
        self._folded: FoldedEncoder | None = None
        self._graphs: dict[tuple[int, ...], Callable] = {}  # by possible patterns
        self._building = threading.RLock()  # the server and `anonymize` call from many threads
        self._stds = [np.sqrt(np.maximum(v, 0.0)) for v in self.variances.arrays]

    @property
    def folded(self) -> FoldedEncoder:
        """The encoder with batch norm folded into its convolutions (`inference`)."""
        with self._building:
            if self._folded is None:
                self._folded = FoldedEncoder.from_keras(self.encoder)
        return self._folded

    def _build_graph(self, patterns: tuple[int, ...]) -> Callable:
        """Trace the TensorFlow inference pass once per set of possible `patterns` (each row's
        noisy layers as bits, bit l: hidden layer l): r, then the folded encoder on one
        segment of rows per pattern, with that pattern's layer noise (`sizes` rows each)."""
        d, n_layers = self.encoder.n_features, self.variances.n_layers
        stds = [tf.constant(s, tf.float32) for s in self._stds]
        forward = self.folded.tf_forward()

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, d], tf.float32),
                tf.TensorSpec([2], tf.int64),
                tf.TensorSpec([len(patterns)], tf.int32),
                tf.TensorSpec([], tf.float32),
            ]
        )
        def graph(x, seed, sizes, scale):  # noqa: ANN001, ANN202
            seeds = tf.random.experimental.stateless_split(seed, 1 + len(patterns) * n_layers)
            r = tf.random.stateless_uniform(tf.shape(x), seed=seeds[0])
            xs, rs = tf.split(x, sizes), tf.split(r, sizes)

            def segment(j: int) -> tf.Tensor:
                noise = layer_noise_fn(patterns[j], seeds[1 + j * n_layers :], stds, scale)
                # padded to a multiple of SEGMENT_ROWS: oneDNN builds its convolutions per
                # batch shape (~0.5 ms each), so few distinct shapes keep them cached
                n = sizes[j]
                pad = [[0, -n % SEGMENT_ROWS], [0, 0]]
                return tf.cond(  # oneDNN's fused convolutions fail on an empty batch
                    n > 0,
                    lambda: forward(tf.pad(xs[j], pad), tf.pad(rs[j], pad), noise)[:n],
                    lambda: tf.zeros([0, d], tf.float32),
                )

            return tf.concat([segment(j) for j in range(len(patterns))], axis=0)

        # a concrete function: calling it skips tf.function's per-call argument binding (~1 ms)
        return graph.get_concrete_function()

    def anonymize(
        self,
        x: np.ndarray,
        rng_seed: int | None = None,
        noise_scale: float | None = None,
        n_noisy_layers: int = 1,
        fixed_layer: int | None = None,
        batch_size: int = 16384,
    ) -> np.ndarray:
        """x (n, d) in [0,1] -> x^ (n, d): fresh r per record and noise with variance
        noise_scale·var_l (default noise_scale = delta) on `n_noisy_layers` random hidden layers
        per record (or on `fixed_layer`). Same rng_seed -> same output; None -> OS entropy."""
        n_layers = self.variances.n_layers
        scale = self.config.delta if noise_scale is None else noise_scale
        # separate streams: the draw of noisy layers must not shift the randomness r
        layer_rng, rng = np.random.default_rng(rng_seed).spawn(2)
        x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
        pattern = draw_layer_patterns(layer_rng, len(x), n_layers, n_noisy_layers, fixed_layer)
        if scale <= 0:
            pattern[:] = 0
        if len(x) <= SMALL_BATCH:
            return self._anonymize_small(x, pattern, scale, rng)
        patterns = (0,) if scale <= 0 else possible_patterns(n_layers, n_noisy_layers, fixed_layer)
        with self._building:
            if patterns not in self._graphs:
                self._graphs[patterns] = self._build_graph(patterns)
        graph = self._graphs[patterns]
        scale_t = tf.constant(max(scale, 0.0), tf.float32)
        # rows sorted by pattern: each batch splits into one contiguous segment per pattern
        segment = np.searchsorted(patterns, pattern)
        order = np.argsort(segment, kind="stable")
        xs, segment = x[order], segment[order]
        out = np.empty_like(x)
        for start in range(0, len(x), batch_size):
            rows = slice(start, start + batch_size)
            seed = tf.constant(rng.integers(0, 2**62, size=2), tf.int64)
            sizes = np.bincount(segment[rows], minlength=len(patterns)).astype(np.int32)
            out[order[rows]] = graph(xs[rows], seed, sizes, scale_t).numpy()
        return out

    def _anonymize_small(
        self, x: np.ndarray, pattern: np.ndarray, scale: float, rng: np.random.Generator
    ) -> np.ndarray:
        """The same draw for a few rows in numpy (a TensorFlow call alone costs ~0.6 ms)."""
        factor = np.float32(np.sqrt(max(scale, 0.0)))

        def noise(i: int, h: np.ndarray) -> None:
            rows = np.flatnonzero((pattern >> i) & 1)
            if rows.size:
                eps = rng.standard_normal((rows.size, *h.shape[1:]), dtype=np.float32)
                h[rows] += eps * (self._stds[i] * factor)

        r = rng.random(x.shape, dtype=np.float32)
        return self.folded.forward(x, r, noise if pattern.any() else None)

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.encoder.save_weights(d / "encoder.weights.h5")
        meta = {"n_features": self.encoder.n_features, "config": asdict(self.config)}
        (d / "config.json").write_text(json.dumps(meta, indent=2))
        self.variances.save_npz(d / "variances.npz")
        (d / "history.json").write_text(json.dumps(self.history))

    @classmethod
    def load(cls, directory: str | Path) -> TrainedEncoder:
        d = Path(directory)
        meta = json.loads((d / "config.json").read_text())
        enc = build_encoder(meta["n_features"])
        enc.load_weights(d / "encoder.weights.h5")
        hist_path = d / "history.json"
        history = json.loads(hist_path.read_text()) if hist_path.exists() else {}
        return cls(
            enc,
            LayerVariances.load(d / "variances.npz"),
            GANConfig.from_dict(meta["config"]),
            history,
        )


def train_anomigan(
    x_train: np.ndarray,
    target: keras.Model,
    config: GANConfig,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainedEncoder:
    """Train for config.steps custom steps, record per-layer variances, return the anonymiser."""
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    gan = AnomiGAN(x_train, target, config)
    step_fn = tf.function(gan.train_step)
    history: dict[str, list[float]] = {"step": []}
    t0 = time.perf_counter()
    acc: dict[str, float] = {}
    n_acc = 0
    for step in tqdm(range(1, config.steps + 1), desc="AnomiGAN", mininterval=2.0):
        losses = step_fn()
        if config.log_every > 0:
            for k, v in losses.items():  # running mean over the logging window
                acc[k] = acc.get(k, 0.0) + v
            n_acc += 1
            if step % config.log_every == 0 or step == config.steps:
                vals = {k: float(v) / n_acc for k, v in acc.items()}
                history["step"].append(float(step))
                for k, v in vals.items():
                    history.setdefault(k, []).append(v)
                if callback is not None:
                    callback(step, vals)
                acc, n_acc = {}, 0
    variances = gan.record_variances(config.variance_passes)
    history["train_seconds"] = [time.perf_counter() - t0]
    return TrainedEncoder(gan.encoder, variances, config, history)
