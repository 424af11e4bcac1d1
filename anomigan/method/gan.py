"""AnomiGAN training: encoder E(x, r) against an oracle-aware linker D1, a realism critic and a
frozen target classifier D2; plus the trained anonymiser with the paper's per-layer noise.

Encoder objective per step (B records x with predicted classes y = argmax D2(x)):

    L_E = λe·mean_i ||a_i - x^_i||_2 + w_corr·mean|corr(releases) - C|
          + λd·( w_d2·L_D2(x, x^) + δ·(w_link·L_link + w_nce·(L_nce_oracle + L_nce_orig))
                 + w_real·L_real )

with x^ = E(x, r). With `prior="copula"` r is a fresh synthetic record of x's
predicted class (a per-class Gaussian copula fitted on the training split) and the anchor is the
δ-blend a = (1-δ)·x + δ·r: at δ = 1 the encoder is pulled to the synthetic record, at δ = 0 to
the original, and in between L_D2 moves the release along what the target reads. With
`prior="score"` (the default) r is, of `score_draws` such records, the one the target scores
nearest x (the score copula's draw), so the release starts from a record that keeps x's score,
and the anchor is the same blend. With
`prior="uniform"` (the paper) r ~ U[0,1]^d and a = x with weight (1-δ). L_D2 is chosen by
`d2_loss`: the paper's cross-entropy on the arg-max class, a KL divergence between the target's
outputs, or a squared error on its centred log-probabilities (the score, not only the class).
C is chosen by `corr_target`: the step's records' correlations, the draws r's, or their
δ-blend (the default), so that at δ = 1 no part of the target depends on x. See
`AnomiGAN.train_step` and docs/method.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from anomigan.method.anonymizers import ClassCopula
from anomigan.method.config import CORR_TARGETS, D2_LOSSES, PRIOR_BANK, PRIORS, GANConfig
from anomigan.method.encoder import SEGMENT_ROWS, TrainedEncoder
from anomigan.method.networks import build_critic, build_encoder, build_linker, linker_features
from anomigan.method.noise import LayerVariances, VarianceAccumulator
from anomigan.method.optim import FusedAdam

# the training module's public names, with the config and the trained encoder it returns
__all__ = [
    "CORR_TARGETS",
    "D2_LOSSES",
    "PRIORS",
    "PRIOR_BANK",
    "SEGMENT_ROWS",
    "AnomiGAN",
    "GANConfig",
    "TrainedEncoder",
    "corr_gap",
    "d2_term",
    "predicted_classes",
    "soft_attack_loss",
    "train_anomigan",
]


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


def _log_probs(p: tf.Tensor, floor: float = 1e-12) -> tf.Tensor:
    """Centred log-probabilities: the target's score, not saturated at 0 or 1 (the score prior
    matches them with `anonymizers.centred_log_proba`'s floor, 1e-7)."""
    logp = tf.math.log(tf.clip_by_value(p, floor, 1.0))
    return logp - tf.reduce_mean(logp, axis=1, keepdims=True)


def d2_term(kind: str, p_orig: tf.Tensor, p_anon: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """How far the target's output on x^ is from its output on x (`GANConfig.d2_loss`)."""
    if kind == "ce":
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, p_anon))
    if kind == "kl":
        q = tf.clip_by_value(p_anon, 1e-7, 1.0)
        p = tf.clip_by_value(p_orig, 1e-7, 1.0)
        return tf.reduce_mean(tf.reduce_sum(p * (tf.math.log(p) - tf.math.log(q)), axis=1))
    return tf.reduce_mean(tf.square(_log_probs(p_anon) - _log_probs(p_orig)))


def corr_matrix(m: tf.Tensor) -> tf.Tensor:
    """Column correlation matrix of a batch (a constant column correlates 0 with everything,
    as in `metrics.corr_matrix_mad`)."""
    m = m - tf.reduce_mean(m, axis=0, keepdims=True)
    cov = tf.matmul(m, m, transpose_a=True)
    sd = tf.sqrt(tf.linalg.diag_part(cov) + 1e-8)
    return cov / (sd[:, None] * sd[None, :])


def corr_gap(a: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference between a batch's correlation matrix and a target matrix."""
    return tf.reduce_mean(tf.abs(corr_matrix(a) - target))


def predicted_classes(target: keras.Model, x: np.ndarray) -> np.ndarray:
    """The frozen target's arg-max class for model-space records."""
    return np.argmax(np.asarray(target(x, training=False)), axis=1).astype(np.int32)


class AnomiGAN:
    """The training side of AnomiGAN: it owns the encoder, D1 (linker), the realism critic,
    their optimisers and the frozen target, and `train_step` is one explicit alternating step
    (as in keras.io's GAN examples); `train_anomigan` runs it and returns a `TrainedEncoder`."""

    #: what `train_step` returns, in this order
    LOSS_NAMES = (
        "loss_encoder",
        "loss_linker",
        "loss_critic",
        "dist",
        "loss_d2",
        "corr_gap",
        "loss_link_enc",
        "loss_real_enc",
        "nce_oracle",
        "nce_orig",
        "top1_oracle",
        "top1_orig",
        "agreement",
        "r_std",
    )

    def __init__(
        self,
        x_train: np.ndarray,
        target: keras.Model,
        config: GANConfig,
        prior: ClassCopula | None = None,
    ) -> None:
        self.config = config
        x_train = np.clip(np.asarray(x_train, np.float32), 0.0, 1.0)
        self.n_features = x_train.shape[1]
        self.target = target
        self.target.trainable = False
        y = predicted_classes(target, x_train)
        self.x_data = tf.constant(x_train)
        self.y_data = tf.constant(y)
        self.p_data = tf.constant(np.asarray(target(x_train, training=False), np.float32))
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
        self.gen = (
            tf.random.Generator.from_seed(config.seed)
            if config.seed is not None
            else tf.random.Generator.from_non_deterministic_state()
        )
        # r for training: a bank of synthetic records per class, drawn once from the prior
        self.prior = prior
        if prior is not None:
            rng = np.random.default_rng(config.seed)
            bank = [prior.sample(np.full(PRIOR_BANK, c), rng) for c in range(n_cls)]
            self.r_bank: tf.Tensor | None = tf.constant(np.stack(bank))  # (classes, bank, d)
        else:
            self.r_bank = None
        # prior "score": the target's score of each bank record, to match records' scores
        self.bank_scores: tf.Tensor | None = None
        if config.prior == "score" and self.r_bank is not None:
            flat = tf.reshape(self.r_bank, [-1, self.n_features])
            scores = _log_probs(target(flat, training=False), 1e-7)
            self.bank_scores = tf.reshape(scores, [n_cls, PRIOR_BANK, -1])
        self.encoder = build_encoder(self.n_features)
        self.linker = build_linker(self.n_features)
        self.critic = build_critic(self.n_features)

        self.opt_e, self.opt_l, self.opt_c = (
            FusedAdam(net.trainable_variables, config.lr, beta_1=config.beta_1)
            for net in (self.encoder, self.linker, self.critic)
        )

    def draw_r(self, y: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
        """Fresh randomness r for records of predicted classes y and target probabilities p:
        a same-class synthetic record from the bank (copula), of `score_draws` of them the one
        the target scores nearest p (score), or uniform noise (the paper's prior)."""
        if self.r_bank is None:
            return self.gen.uniform([tf.shape(y)[0], self.n_features])
        if self.bank_scores is None:
            j = self.gen.uniform(tf.shape(y), 0, PRIOR_BANK, dtype=tf.int32)
            return tf.gather_nd(self.r_bank, tf.stack([y, j], axis=1))
        m = self.config.score_draws
        j = self.gen.uniform([tf.shape(y)[0], m], 0, PRIOR_BANK, dtype=tf.int32)
        yy = tf.repeat(y[:, None], m, axis=1)
        scores = tf.gather_nd(self.bank_scores, tf.stack([yy, j], axis=2))  # (n, m, classes)
        gap = tf.reduce_sum(tf.abs(scores - _log_probs(p, 1e-7)[:, None, :]), axis=2)
        best = tf.gather(j, tf.argmin(gap, axis=1, output_type=tf.int32), batch_dims=1)
        return tf.gather_nd(self.r_bank, tf.stack([y, best], axis=1))

    def _sample(self) -> dict[str, tf.Tensor]:
        cfg = self.config
        n = tf.shape(self.x_data)[0]
        b, k = cfg.batch_size, cfg.n_ref
        idx = self.gen.uniform([b], 0, n, dtype=tf.int32)
        y = tf.gather(self.y_data, idx)
        cnt = tf.gather(self.cls_counts, y)
        # a same-class negative other than the record itself (offset 1..cnt-1 in its class row)
        pos = tf.argmax(
            tf.cast(tf.gather(self.cls_table, y) == idx[:, None], tf.int32),
            axis=1,
            output_type=tf.int32,
        )
        off = 1 + tf.cast(self.gen.uniform([b]) * tf.cast(tf.maximum(cnt - 1, 1), tf.float32),
                          tf.int32)  # fmt: skip
        j = tf.where(cnt > 1, (pos + off) % tf.maximum(cnt, 1), pos)
        neg = tf.gather_nd(self.cls_table, tf.stack([y, j], axis=1))
        ref = self.gen.uniform([k], 0, n, dtype=tf.int32)
        y_ref = tf.gather(self.y_data, ref)
        p = tf.gather(self.p_data, idx)
        p_neg = tf.gather(self.p_data, neg)
        return {
            "x": tf.gather(self.x_data, idx),
            "p": p,
            "y": y,
            "x_neg": tf.gather(self.x_data, neg),
            "x_ref": tf.gather(self.x_data, ref),
            "y_ref": y_ref,
            "r": self.draw_r(tf.concat([y, y, y], axis=0), tf.concat([p, p, p_neg], axis=0)),
            "r_ref": self.draw_r(y_ref, tf.gather(self.p_data, ref)),
        }

    def _corr_target(self, inp: tf.Tensor, r: tf.Tensor) -> tf.Tensor:
        """What the step's releases' correlations are matched to: their own records' (which
        pulls releases to x), the draws r's (no x in it), or their δ-blend."""
        cfg = self.config
        if cfg.corr_target == "records" or self.r_bank is None:
            return corr_matrix(inp)
        if cfg.corr_target == "prior":
            return corr_matrix(r)
        return (1.0 - cfg.delta) * corr_matrix(inp) + cfg.delta * corr_matrix(r)

    def train_step(self, data: object = None) -> dict[str, tf.Tensor]:
        """One alternating step: D1 and critic update on the current x^, then the encoder update
        scored by the updated D1/critic (one encoder forward pass shared by both)."""
        cfg = self.config
        b = cfg.batch_size
        s = self._sample()
        x, y, x_ref, y_ref = s["x"], s["y"], s["x_ref"], s["y_ref"]
        # the attack's candidate pool: other records' re-anonymisations, as released (inference
        # mode, no gradient), so batch norm's training statistics come from this batch's records
        z_ref = tf.stop_gradient(self.encoder(x_ref, s["r_ref"], training=False))
        with tf.GradientTape() as tape_e:
            # one batch-norm batch: x^ = E(x, r), z = E(x, r'') (the adversary's re-anonymisation),
            # x^_neg = E(x', r) for x' ≠ x of the same predicted class
            inp = tf.concat([x, x, s["x_neg"]], axis=0)
            out = self.encoder(inp, s["r"], training=True)
            xh, z, xh_neg = out[:b], out[b : 2 * b], out[2 * b :]
            pos_f = linker_features(x, z, xh)
            neg_f = linker_features(x, z, xh_neg)
            # D1 and the critic: one call each on positives and negatives stacked
            pair_f = tf.concat([pos_f, neg_f], axis=0)
            with tf.GradientTape(persistent=True) as tape_d:
                p_lnk = self.linker(tf.stop_gradient(pair_f))
                l_lnk = _bce(1.0, p_lnk[:b]) + _bce(0.0, p_lnk[b:])
                p_crit = self.critic(tf.concat([x_ref[:b], tf.stop_gradient(xh)], axis=0))
                l_crit = _bce(1.0, p_crit[:b]) + _bce(0.0, p_crit[b:])
            self.opt_l.apply(tape_d.gradient(l_lnk, self.linker.trainable_variables))
            self.opt_c.apply(tape_d.gradient(l_crit, self.critic.trainable_variables))
            del tape_d

            if self.r_bank is None:  # the paper: closeness to x, fading with δ
                anchor, w_close = x, cfg.lambda_e * (1.0 - cfg.delta)
            else:  # closeness to the δ-blend of the record and its synthetic draw
                anchor = (1.0 - cfg.delta) * x + cfg.delta * s["r"][:b]
                w_close = cfg.lambda_e
            close = tf.reduce_mean(tf.sqrt(tf.reduce_sum(tf.square(anchor - xh), axis=1) + 1e-8))
            probs = self.target(xh, training=False)
            l_d2 = d2_term(cfg.d2_loss, s["p"], probs, y)
            # encoder wants D1 wrong on both: positives called unlinked, negatives linked
            p_link = self.linker(pair_f)
            l_link = _bce(0.0, p_link[:b]) + _bce(1.0, p_link[b:])
            l_real = _bce(1.0, self.critic(xh))
            keys_y = tf.concat([y, y_ref], axis=0)
            nce_o, top1_o = soft_attack_loss(xh, tf.concat([z, z_ref], axis=0), y, keys_y, cfg.tau)
            nce_x, top1_x = soft_attack_loss(xh, tf.concat([x, x_ref], axis=0), y, keys_y, cfg.tau)
            privacy = cfg.w_link * l_link + cfg.w_nce * (nce_o + nce_x)
            l_corr = corr_gap(out, self._corr_target(inp, s["r"]))
            l_e = (
                w_close * close
                + cfg.w_corr * l_corr
                + cfg.lambda_d * (cfg.w_d2 * l_d2 + cfg.delta * privacy + cfg.w_real * l_real)
            )
        self.opt_e.apply(tape_e.gradient(l_e, self.encoder.trainable_variables))
        agree = tf.reduce_mean(
            tf.cast(tf.argmax(probs, axis=1, output_type=tf.int32) == y, tf.float32)
        )
        return {
            "loss_encoder": l_e,
            "loss_linker": l_lnk,
            "loss_critic": l_crit,
            "dist": tf.reduce_mean(tf.sqrt(tf.reduce_sum(tf.square(x - xh), axis=1) + 1e-8)),
            "loss_d2": l_d2,
            "corr_gap": l_corr,
            "loss_link_enc": l_link,
            "loss_real_enc": l_real,
            "nce_oracle": nce_o,
            "nce_orig": nce_x,
            "top1_oracle": top1_o,
            "top1_orig": top1_x,
            "agreement": agree,
            "r_std": tf.reduce_mean(tf.abs(xh - z)),
        }

    def train_steps(self) -> Callable[[tf.Tensor], tf.Tensor]:
        """A graph function that runs n steps in one call (a call costs about as much as a step's
        arithmetic) and returns each loss summed over them, in `LOSS_NAMES` order."""

        @tf.function
        def run_steps(n: tf.Tensor) -> tf.Tensor:
            total = tf.zeros([len(self.LOSS_NAMES)])
            for _ in tf.range(n):
                losses = self.train_step()
                total += tf.stack([tf.cast(losses[k], tf.float32) for k in self.LOSS_NAMES])
            return total

        return run_steps

    def record_variances(self, passes: int) -> LayerVariances:
        """Variance of each hidden activation over the training set x fresh r (inference mode)."""
        enc = self.encoder

        @tf.function
        def hidden(xb: tf.Tensor, r: tf.Tensor) -> list[tf.Tensor]:
            return enc.forward(xb, r, training=False)[1]

        acc = VarianceAccumulator(enc.hidden_shapes)
        for _ in range(passes):
            for start in range(0, int(self.x_data.shape[0]), 4096):
                rows = slice(start, start + 4096)
                xb = self.x_data[rows]
                r = self.draw_r(self.y_data[rows], self.p_data[rows])
                acc.update([h.numpy() for h in hidden(xb, r)])
        return acc.result()


#: training steps per graph call when no losses are logged
CHUNK = 100


def train_anomigan(
    x_train: np.ndarray,
    target: keras.Model,
    config: GANConfig,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    blocks: list[tuple[int, int, bool]] | None = None,
) -> TrainedEncoder:
    """Train for config.steps custom steps, record per-layer variances, return the anonymiser.

    `blocks` (`RecordCodec.model_blocks()`) tells the copula prior which columns are one-hot
    categories; None: every column continuous."""
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)

    def classify(x: np.ndarray) -> np.ndarray:
        return predicted_classes(target, x)

    def predict_proba(x: np.ndarray) -> np.ndarray:
        return np.asarray(target(np.asarray(x, np.float32), training=False))

    prior = None
    if config.prior in ("copula", "score"):
        x32 = np.clip(np.asarray(x_train, np.float32), 0.0, 1.0)
        prior = ClassCopula.fit(x32, classify, blocks).quantized()
    gan = AnomiGAN(x_train, target, config, prior)
    run_steps = gan.train_steps()
    names = AnomiGAN.LOSS_NAMES
    # one call per logged window (or per CHUNK steps when nothing is logged)
    window = config.log_every if config.log_every > 0 else CHUNK
    history: dict[str, list[float]] = {"step": []}
    t0 = time.perf_counter()
    done = 0
    with tqdm(total=config.steps, desc="AnomiGAN", mininterval=2.0) as bar:
        while done < config.steps:
            n = min(window - done % window, config.steps - done)
            sums = run_steps(tf.constant(n, tf.int32)).numpy()
            done += n
            bar.update(n)
            if config.log_every > 0:
                vals = dict(zip(names, (sums / n).tolist(), strict=True))
                history["step"].append(float(done))
                for k, v in vals.items():
                    history.setdefault(k, []).append(v)
                if callback is not None:
                    callback(done, vals)
    variances = gan.record_variances(config.variance_passes)
    history["train_seconds"] = [time.perf_counter() - t0]
    return TrainedEncoder(gan.encoder, variances, config, history, prior, predict_proba)
