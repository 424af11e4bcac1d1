"""The trained anonymiser: encoder weights, recorded layer variances, the prior r is drawn from,
and the inference passes that release records with the paper's per-layer noise."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from anomigan.method.anonymizers import ClassCopula, ScoreCopula
from anomigan.method.config import GANConfig
from anomigan.method.inference import SMALL_BATCH, FoldedEncoder
from anomigan.method.networks import build_encoder
from anomigan.method.noise import (
    LayerVariances,
    draw_layer_patterns,
    layer_noise_fn,
    possible_patterns,
)

#: Rows of each pattern segment in the TensorFlow pass are padded to a multiple of this.
SEGMENT_ROWS = 64

#: Rows per TensorFlow call of a large release: a batch's activations then stay in the CPU's
#: caches, which makes the pass faster than larger calls do (docs/method.md, "Inference speed").
TF_BATCH_ROWS = 4096


@dataclass
class TrainedEncoder:
    """A trained anonymiser: encoder weights, recorded layer variances, config, loss history and
    the prior r is drawn from (None: uniform). `predict_proba` is the frozen target's: the
    score prior scores its draws with it, and it gives the predicted class when `anonymize` is
    called without `classes` (set by training; `load` takes it)."""

    encoder: keras.Model
    variances: LayerVariances
    config: GANConfig
    history: dict[str, list[float]] = field(default_factory=dict)
    prior: ClassCopula | None = None
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # inference runs on the folded weights (frozen once training is over), built on first use
        self._folded: FoldedEncoder | None = None
        self._graphs: dict[tuple[int, ...], Callable[..., tf.Tensor]] = {}  # by possible patterns
        self._building = threading.RLock()  # the server and `anonymize` call from many threads
        self._stds = [np.sqrt(np.maximum(v, 0.0)) for v in self.variances.arrays]

    @property
    def folded(self) -> FoldedEncoder:
        """The encoder with batch norm folded into its convolutions (`inference`)."""
        with self._building:
            if self._folded is None:
                self._folded = FoldedEncoder.from_keras(self.encoder)
        return self._folded

    def _build_graph(self, patterns: tuple[int, ...]) -> Callable[..., tf.Tensor]:
        """Trace the TensorFlow inference pass once per set of possible `patterns` (each row's
        noisy layers as bits, bit l: hidden layer l): r, then the folded encoder on one
        segment of rows per pattern, with that pattern's layer noise (`sizes` rows each)."""
        d, n_layers = self.encoder.n_features, self.variances.n_layers
        stds = [tf.constant(s, tf.float32) for s in self._stds]
        forward = self.folded.tf_forward()

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, d], tf.float32),
                tf.TensorSpec([None, d], tf.float32),
                tf.TensorSpec([2], tf.int64),
                tf.TensorSpec([len(patterns)], tf.int32),
                tf.TensorSpec([], tf.float32),
            ]
        )
        def graph(
            x: tf.Tensor, r: tf.Tensor, seed: tf.Tensor, sizes: tf.Tensor, scale: tf.Tensor
        ) -> tf.Tensor:
            seeds = tf.random.experimental.stateless_split(seed, 1 + len(patterns) * n_layers)
            xs, rs = tf.split(x, sizes), tf.split(r, sizes)

            def segment(j: int) -> tf.Tensor:
                noise = layer_noise_fn(patterns[j], seeds[1 + j * n_layers :], stds, scale)
                # padded to a multiple of SEGMENT_ROWS: oneDNN builds its convolutions per
                # batch shape, so few distinct shapes keep them cached
                n = sizes[j]
                pad = [[0, -n % SEGMENT_ROWS], [0, 0]]
                return tf.cond(  # oneDNN's fused convolutions fail on an empty batch
                    n > 0,
                    lambda: forward(tf.pad(xs[j], pad), tf.pad(rs[j], pad), noise)[:n],
                    lambda: tf.zeros([0, d], tf.float32),
                )

            return tf.concat([segment(j) for j in range(len(patterns))], axis=0)

        # a concrete function: calling it skips tf.function's per-call argument binding
        return graph.get_concrete_function()

    def anonymize(
        self,
        x: np.ndarray,
        rng_seed: int | None = None,
        noise_scale: float | None = None,
        n_noisy_layers: int = 1,
        fixed_layer: int | None = None,
        batch_size: int = TF_BATCH_ROWS,
        classes: np.ndarray | None = None,
    ) -> np.ndarray:
        """x (n, d) in [0,1] -> x^ (n, d): fresh r per record and noise with variance
        noise_scale·var_l (default: the config's noise_factor·delta) on `n_noisy_layers` random
        hidden layers per record (or on `fixed_layer`). Same rng_seed -> same output; None -> OS
        entropy. `classes`: the target's predicted class per record, needed when r comes from a
        prior."""
        n_layers = self.variances.n_layers
        scale = self.config.noise_scale if noise_scale is None else noise_scale
        # separate streams: the draw of noisy layers must not shift the randomness r
        layer_rng, rng = np.random.default_rng(rng_seed).spawn(2)
        x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
        pattern = draw_layer_patterns(layer_rng, len(x), n_layers, n_noisy_layers, fixed_layer)
        if scale <= 0:
            pattern[:] = 0
        r = self.draw_r(x, classes, rng)
        if len(x) <= SMALL_BATCH:
            return self._anonymize_small(x, r, pattern, scale, rng)
        patterns = (0,) if scale <= 0 else possible_patterns(n_layers, n_noisy_layers, fixed_layer)
        with self._building:
            if patterns not in self._graphs:
                self._graphs[patterns] = self._build_graph(patterns)
        graph = self._graphs[patterns]
        scale_t = tf.constant(max(scale, 0.0), tf.float32)
        # rows sorted by pattern: each batch splits into one contiguous segment per pattern
        segment = np.searchsorted(patterns, pattern)
        order = np.argsort(segment, kind="stable")
        xs, rs, segment = x[order], r[order], segment[order]
        out = np.empty_like(x)
        for start in range(0, len(x), batch_size):
            rows = slice(start, start + batch_size)
            seed = tf.constant(rng.integers(0, 2**62, size=2), tf.int64)
            sizes = np.bincount(segment[rows], minlength=len(patterns)).astype(np.int32)
            out[order[rows]] = graph(xs[rows], rs[rows], seed, sizes, scale_t).numpy()
        return out

    def draw_r(
        self, x: np.ndarray, classes: np.ndarray | None, rng: np.random.Generator
    ) -> np.ndarray:
        """The randomness r per record: a fresh synthetic record of its class, of
        `score_draws` such records the one the target scores nearest (prior "score"), or
        uniform."""
        if self.prior is None:
            return rng.random(x.shape, dtype=np.float32)
        score, proba = self.config.prior == "score", self.predict_proba
        if proba is None and (score or classes is None):
            raise ValueError(
                "this encoder draws r by the target's score: give it the target's predict_proba "
                "(TrainedEncoder.load(folder, predict_proba))"
                if score
                else "this encoder draws r from a per-class prior: pass the target's predicted "
                "classes (AnomiGANAnonymizer does, given the target's predict)"
            )
        if classes is None:
            assert proba is not None  # checked above
            classes = np.asarray(proba(x)).argmax(axis=1)
        classes = np.asarray(classes)
        if classes.shape != (len(x),):
            raise ValueError(
                f"classes must hold one class per record ({len(x)}), got shape {classes.shape}"
            )
        if score:
            assert proba is not None  # checked above
            matched = ScoreCopula(self.prior, proba, self.config.score_draws)
            return matched.sample_matched(x, classes, rng)
        return self.prior.sample(classes, rng)

    def _anonymize_small(
        self,
        x: np.ndarray,
        r: np.ndarray,
        pattern: np.ndarray,
        scale: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """The same draw for a few rows in numpy (one TensorFlow call costs more than the pass)."""
        factor = np.float32(np.sqrt(max(scale, 0.0)))

        def noise(i: int, h: np.ndarray) -> None:
            rows = np.flatnonzero((pattern >> i) & 1)
            if rows.size:
                eps = rng.standard_normal((rows.size, *h.shape[1:]), dtype=np.float32)
                h[rows] += eps * (self._stds[i] * factor)

        return self.folded.forward(x, r, noise if pattern.any() else None)

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.encoder.save_weights(d / "encoder.weights.h5")
        meta = {"n_features": self.encoder.n_features, "config": asdict(self.config)}
        (d / "config.json").write_text(json.dumps(meta, indent=2))
        self.variances.save_npz(d / "variances.npz")
        (d / "history.json").write_text(json.dumps(self.history))
        if self.prior is not None:
            self.prior.save(d / "prior")

    @classmethod
    def load(
        cls,
        directory: str | Path,
        predict_proba: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> TrainedEncoder:
        """The encoder saved in `directory`; `predict_proba`: its target's (see the class)."""
        d = Path(directory)
        meta = json.loads((d / "config.json").read_text())
        # encoders saved before noise_factor existed were released with the paper's δ·var_l
        meta["config"].setdefault("noise_factor", 1.0)
        meta["config"].setdefault("corr_target", "records")  # what they were trained with
        enc = build_encoder(meta["n_features"])
        enc.load_weights(d / "encoder.weights.h5")
        hist_path = d / "history.json"
        history = json.loads(hist_path.read_text()) if hist_path.exists() else {}
        prior = ClassCopula.load(d / "prior") if (d / "prior").is_dir() else None
        return cls(
            enc,
            LayerVariances.load(d / "variances.npz"),
            GANConfig.from_dict(meta["config"]),
            history,
            prior,
            predict_proba,
        )
