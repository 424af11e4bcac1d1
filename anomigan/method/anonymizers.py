"""One protocol for every anonymiser: AnomiGAN, the Laplace mechanism, and reference baselines.

All of them map model-space records (the codec's [0, 1]^d) to anonymised model-space records,
so the metrics, attacks, plots, tuning and serving never need to know which one they hold. The
codec turns raw records into model space and back at the edges.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from scipy import special, stats

if TYPE_CHECKING:  # encoder imports this module at run time
    from anomigan.method.encoder import TrainedEncoder

Predict = Callable[[np.ndarray], np.ndarray]
#: re-draws of the prediction guard, as `train` serves it (0 turns the guard off)
MAX_RESAMPLE = 10
#: the score copula's draws where one point stands for its family (tune, model card) and the
#: score prior's (`GANConfig.score_draws`), chosen on the validation split (docs/method.md)
SCORE_DRAWS = 4
#: quantiles per variable a saved copula keeps (aggregates: no record's values in row order)
N_QUANTILES = 64
#: rows a copula draws at a time: the draw's temporaries then stay in the CPU's caches, and the
#: normals come from the generator in the same order, so the values equal one whole draw's
#: (docs/method.md, "Inference speed")
SAMPLE_ROWS = 4096
#: the score-bin copula's bins per class: the most whose linkage bound over all N candidates,
#: cells / N, stays at 2·K/N, the issue's synthetic endpoint (an adversary linking among fewer
#: candidates has a higher one: docs/method.md, "What the measured linkage can certify")
SCORE_BINS = 2
#: rejection rounds of the score-bin copula before a record gets a plain same-class draw
BIN_ROUNDS = 100


def is_guarded(anonymizer: object) -> bool:
    """Whether an anonymiser releases through the prediction guard."""
    inner_guard = getattr(anonymizer, "predict", None) is not None and isinstance(
        anonymizer, AnomiGANAnonymizer | Guarded
    )
    return inner_guard and getattr(anonymizer, "max_resample", 0) > 0


def guard_release(
    draw: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    predict: Predict | None,
    max_resample: int,
) -> np.ndarray:
    """The prediction guard, one mechanism for every anonymiser: draw a release per record and
    re-draw records whose release the target classifies differently, up to `max_resample`
    times, keeping the first draw that keeps the class (else the last one).

    Re-draws go in rounds of 1, 2, 4, ... candidates per still-changed record, taken in order:
    the same result as one re-draw at a time (the draws are independent), in a few large calls
    instead of up to `max_resample` small ones. `draw` must use fresh randomness per call.
    """
    out = draw(x)
    if predict is None or max_resample <= 0 or len(x) == 0:
        return out
    both = predict(np.concatenate([x, out]))  # one forward pass for both checks
    wanted, changed = both[: len(x)], np.flatnonzero(both[len(x) :] != both[: len(x)])
    left, per_record = max_resample, 1
    while changed.size and left > 0:
        k = min(per_record, left)
        candidates = draw(np.repeat(x[changed], k, axis=0))
        kept = predict(candidates).reshape(-1, k) == wanted[changed, None]
        pick = np.where(kept.any(axis=1), kept.argmax(axis=1), k - 1)
        out[changed] = candidates.reshape(len(changed), k, -1)[np.arange(len(changed)), pick]
        changed = changed[~kept.any(axis=1)]
        left, per_record = left - k, 2 * per_record
    return out


@runtime_checkable
class Anonymizer(Protocol):
    """x (n, d) in model space -> x^ (n, d); fresh randomness per call unless `seed` is given."""

    @property
    def name(self) -> str: ...  # a property here, so read-only names (Guarded's) satisfy it

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray: ...

    def params(self) -> dict[str, float | int | str]: ...


@dataclass
class Identity:
    """Releases the records unchanged: the worst case every privacy figure is read against."""

    name: str = "identity"

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        return np.array(x, dtype=np.float32, copy=True)

    def params(self) -> dict[str, float | int | str]:
        return {}


@dataclass
class ClassPrototype:
    """Each record becomes the mean training record of its predicted class, plus tiny noise.

    It keeps the target's prediction perfectly and links to nobody, yet destroys the data set's
    structure: the reference that keeps agreement-versus-linkage comparisons honest.
    """

    prototypes: np.ndarray  # (n_classes, d)
    predict: Predict = field(repr=False)  # x -> class index (the target's prediction)
    noise: float = 0.01
    name: str = "class_prototype"

    @classmethod
    def fit(cls, x_train: np.ndarray, predict: Predict, noise: float = 0.01) -> ClassPrototype:
        pred = predict(x_train)
        n_classes = int(pred.max()) + 1
        protos = np.stack(
            [
                x_train[pred == k].mean(axis=0) if (pred == k).any() else x_train.mean(axis=0)
                for k in range(n_classes)
            ]
        )
        return cls(protos.astype(np.float32), predict, noise)

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = self.prototypes[self.predict(x)]
        out = out + rng.normal(0.0, self.noise, size=out.shape)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def params(self) -> dict[str, float | int | str]:
        return {"noise": self.noise}


@dataclass
class LaplaceDP:
    """The paper's baseline: Laplace noise of scale λ on every min-max scaled feature.

    The Laplace mechanism with sensitivity 1 (the range of a scaled feature), so ε = 1/λ per
    feature and d/λ per record by sequential composition. Like the paper, the noise is
    unbounded: released values may leave [0, 1]. Drawn with numpy in one call: diffprivlib's
    `Laplace.randomise` takes one value at a time, too slow for the evaluation's attacks; a test
    checks that both draw the same distribution.
    """

    scale: float
    name: str = "laplace_dp"

    @property
    def epsilon_per_feature(self) -> float:
        return 1.0 / self.scale

    def epsilon_per_record(self, n_features: int) -> float:
        return n_features / self.scale

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        noise = np.random.default_rng(seed).laplace(0.0, self.scale, size=x.shape)
        return (x + noise).astype(np.float32)

    def params(self) -> dict[str, float | int | str]:
        return {"lambda": self.scale, "epsilon_per_feature": self.epsilon_per_feature}


@dataclass
class Guarded:
    """Any anonymiser behind the same prediction guard AnomiGAN is served with, so that a
    reference is never compared unguarded against a guarded encoder."""

    inner: Anonymizer
    predict: Predict = field(repr=False)
    max_resample: int = MAX_RESAMPLE

    @property
    def name(self) -> str:
        return self.inner.name

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)

        def draw(z: np.ndarray) -> np.ndarray:
            return self.inner.anonymize(z, seed=int(rng.integers(0, 2**63 - 1)))

        return guard_release(draw, x, self.predict, self.max_resample)

    def params(self) -> dict[str, float | int | str]:
        # the guard's re-draws depend on the record, so a guarded Laplace release has no ε
        inner = {k: v for k, v in self.inner.params().items() if not k.startswith("epsilon")}
        return {**inner, "max_resample": self.max_resample}


@dataclass
class _ClassModel:
    """One class's Gaussian copula: sorted marginals per variable and the Cholesky factor of
    the normal scores' correlation."""

    marginals: list[np.ndarray]
    chol: np.ndarray

    @cached_property
    def grid(self) -> np.ndarray:
        """The marginals as one (variables, order statistics) matrix: every variable of a class
        has as many (its records, or the saved quantiles)."""
        return np.stack(self.marginals)

    @cached_property
    def slope(self) -> np.ndarray:
        """Each order statistic's step to the next (0 after the last), so that interpolating
        gathers the grid once per value and this once, not the grid twice."""
        return np.diff(self.grid, axis=1, append=self.grid[:, -1:])

    def inverse_cdf(self, u: np.ndarray, discrete: np.ndarray) -> np.ndarray:
        """Values of uniforms u (rows, variables): for a discrete variable the inverse empirical
        CDF (an observed level, never in between), for a continuous one the linear
        interpolation between order statistics (`np.interp` on the grid, every column at once,
        gathering from the flattened grid)."""
        grid = self.grid
        n = grid.shape[1]
        flat, offset = grid.ravel(), np.arange(len(grid)) * n
        out = np.empty_like(u)
        if discrete.any():
            level = np.minimum((u[:, discrete] * n).astype(np.int64), n - 1)
            out[:, discrete] = np.take(flat, offset[discrete] + level)
        cont = ~discrete
        if cont.any():
            pos = u[:, cont] * (n - 1)
            i = np.minimum(pos.astype(np.int64), max(n - 2, 0))
            at = offset[cont] + i
            out[:, cont] = np.take(flat, at) + (pos - i) * np.take(self.slope.ravel(), at)
        return out


@dataclass
class ClassCopula:
    """A fresh synthetic record of the original's predicted class: nothing of the record is
    kept but the class, the reference every learned encoder must beat.

    Fitted per predicted class on the training split: each variable's empirical marginal and
    the correlation of the normal scores of its ranks (a Gaussian copula, shrunk towards the
    identity by `shrinkage` so small classes stay positive definite). A categorical column is
    one discrete variable (a one-hot block becomes its level index and back), so every sample
    decodes to a valid record; continuous variables interpolate between order statistics.
    """

    models: list[_ClassModel]  # per predicted class; the last one pools every class
    blocks: list[tuple[int, int, bool]]
    n_features: int
    predict: Predict = field(repr=False)
    shrinkage: float = 0.05
    name: str = "class_copula"

    @staticmethod
    def _variables(x: np.ndarray, blocks: list[tuple[int, int, bool]]) -> np.ndarray:
        cols = [
            x[:, start] if width == 1 else x[:, start : start + width].argmax(axis=1)
            for start, width, _ in blocks
        ]
        return np.stack(cols, axis=1).astype(np.float64)

    @classmethod
    def fit(
        cls,
        x_train: np.ndarray,
        predict: Predict,
        blocks: list[tuple[int, int, bool]] | None = None,
        shrinkage: float = 0.05,
    ) -> ClassCopula:
        """`blocks` as `RecordCodec.model_blocks()`; None: every column continuous."""
        x_train = np.asarray(x_train, np.float32)
        d = x_train.shape[1]
        blocks = list(blocks) if blocks is not None else [(j, 1, False) for j in range(d)]
        pred = np.asarray(predict(x_train))
        v_all = cls._variables(x_train, blocks)
        models: list[_ClassModel] = []
        for k in [*range(int(pred.max()) + 1), -1]:  # -1: the pooled model
            # a class predicted for fewer than 2 training records borrows the pooled model
            v = v_all[pred == k] if k >= 0 and (pred == k).sum() >= 2 else v_all
            scores = stats.norm.ppf((stats.rankdata(v, axis=0) - 0.5) / len(v))
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.corrcoef(scores, rowvar=False).reshape(len(blocks), len(blocks))
            corr[~np.isfinite(corr)] = 0.0
            np.fill_diagonal(corr, 1.0)
            corr = (1.0 - shrinkage) * corr + shrinkage * np.eye(len(blocks))
            models.append(_ClassModel([np.sort(v[:, j]) for j in range(v.shape[1])],
                                      np.linalg.cholesky(corr)))  # fmt: skip
        return cls(models, blocks, d, predict, shrinkage)

    def sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One synthetic model-space record per entry of `classes`."""
        classes = np.asarray(classes)
        out = np.zeros((len(classes), self.n_features), np.float32)
        discrete = np.array([b[2] for b in self.blocks], bool)
        single = [j for j, b in enumerate(self.blocks) if b[1] == 1]  # one column each
        single_cols = [self.blocks[j][0] for j in single]
        one_hot = [(j, b[0]) for j, b in enumerate(self.blocks) if b[1] > 1]
        for k in np.unique(classes):
            of_class = np.flatnonzero(classes == k)
            # a class the target never predicted on the training split: the pooled model
            m = self.models[int(k)] if int(k) < len(self.models) - 1 else self.models[-1]
            for start in range(0, len(of_class), SAMPLE_ROWS):
                rows = of_class[start : start + SAMPLE_ROWS]
                u = special.ndtr(rng.standard_normal((len(rows), len(self.blocks))) @ m.chol.T)
                values = m.inverse_cdf(u, discrete)
                block = np.zeros((len(rows), self.n_features), np.float32)
                block[:, single_cols] = values[:, single]
                for j, start_col in one_hot:
                    block[np.arange(len(rows)), start_col + values[:, j].astype(np.int64)] = 1.0
                out[rows] = block
        return out

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if len(x) == 0:
            return x.copy()
        return self.sample(self.predict(x), np.random.default_rng(seed))

    def params(self) -> dict[str, float | int | str]:
        return {"shrinkage": self.shrinkage}

    def quantized(self, n_quantiles: int = N_QUANTILES) -> ClassCopula:
        """The same copula with each marginal cut to `n_quantiles` mid-quantiles, what a saved
        encoder keeps: continuous values interpolate between them, categories stay observed
        levels, and no record's values are stored."""
        levels = (np.arange(n_quantiles) + 0.5) / n_quantiles

        def cut(v: np.ndarray, discrete: bool) -> np.ndarray:
            return np.quantile(v, levels, method="inverted_cdf" if discrete else "linear")

        models = [
            _ClassModel(
                [cut(v, disc) for v, (_, _, disc) in zip(m.marginals, self.blocks, strict=True)],
                m.chol,
            )
            for m in self.models
        ]
        return ClassCopula(models, self.blocks, self.n_features, self.predict, self.shrinkage)

    def save(self, directory: str | Path) -> None:
        """Marginals and Cholesky factors as .npz, blocks as JSON (`load` reads them back)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {f"chol{k}": m.chol for k, m in enumerate(self.models)}
        for k, m in enumerate(self.models):
            arrays.update({f"marginal{k}_{j}": v for j, v in enumerate(m.marginals)})
        # numpy's stub has `allow_pickle: bool` beside `**kwds`: mypy can't rule that key out
        np.savez(d / "copula.npz", **arrays)  # type: ignore[arg-type]
        meta = {"blocks": self.blocks, "n_features": self.n_features, "shrinkage": self.shrinkage}
        (d / "copula.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: str | Path, predict: Predict | None = None) -> ClassCopula:
        """A saved copula; without `predict` it samples by class only (`sample`)."""
        d = Path(directory)
        meta = json.loads((d / "copula.json").read_text())
        blocks = [tuple(b) for b in meta["blocks"]]
        with np.load(d / "copula.npz") as f:
            n_models = sum(1 for k in f.files if k.startswith("chol"))
            models = [
                _ClassModel([f[f"marginal{k}_{j}"] for j in range(len(blocks))], f[f"chol{k}"])
                for k in range(n_models)
            ]
        return cls(models, blocks, meta["n_features"], predict or _no_predict, meta["shrinkage"])


def _no_predict(x: np.ndarray) -> np.ndarray:
    raise ValueError("this copula was loaded without the target: sample it by class")


@dataclass
class CopulaBlend:
    """a·x + (1 − a)·s with s a fresh same-class copula sample: the afternoon's trick that keeps
    some of each record at a linkage cost set by `blend_a`."""

    copula: ClassCopula
    blend_a: float
    name: str = "copula_blend"

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        x = np.asarray(x, np.float32)
        s = self.copula.anonymize(x, seed=seed)
        return (self.blend_a * x + (1.0 - self.blend_a) * s).astype(np.float32)

    def params(self) -> dict[str, float | int | str]:
        return {"blend_a": self.blend_a, "shrinkage": self.copula.shrinkage}


def centred_log_proba(p: np.ndarray) -> np.ndarray:
    """log p minus its mean over classes: the target's score, unbounded in both tails (for two
    classes each column is ± half the logit)."""
    logp = np.log(np.clip(np.asarray(p, np.float64), 1e-7, 1.0))
    return logp - logp.mean(axis=1, keepdims=True)


@dataclass
class ScoreCopula:
    """Of `n_draws` fresh same-class copula samples, the one the target scores nearest the
    original (in centred log-probabilities): the afternoon's answer to per-record utility, in
    which the record enters only through the target's output. `n_draws` 1 is the class copula;
    more draws keep more of the score at a linkage cost (an adversary can match scores)."""

    copula: ClassCopula
    predict_proba: Predict
    n_draws: int
    name: str = "score_copula"

    def __post_init__(self) -> None:
        if self.n_draws < 1:
            raise ValueError(f"n_draws must be >= 1, got {self.n_draws}")

    def sample_matched(
        self, x: np.ndarray, classes: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """For each record of x, the nearest-score of `n_draws` samples of its class."""
        n, m = len(x), self.n_draws
        draws = self.copula.sample(np.tile(classes, m), rng)
        scores = centred_log_proba(self.predict_proba(draws)).reshape(m, n, -1)
        gap = np.abs(scores - centred_log_proba(self.predict_proba(x))[None]).sum(axis=2)
        return draws.reshape(m, n, -1)[gap.argmin(axis=0), np.arange(n)]

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if len(x) == 0:
            return x.copy()
        return self.sample_matched(x, self.copula.predict(x), np.random.default_rng(seed))

    def params(self) -> dict[str, float | int | str]:
        return {"n_draws": self.n_draws, "shrinkage": self.copula.shrinkage}


@dataclass
class ScoreBinCopula:
    """A fresh same-class copula record whose target score falls in the record's within-class
    quantile bin (`bins` per class, edges from the training split; rejection sampling).

    A release depends on the record only through its cell (predicted class, bin), so over N
    equally likely candidates no adversary links more than cells / N on average, and one that
    can rule k of them out (the inversion adversary, among the records it does not hold) no
    more than cells / (N − k): a sampler whose linkage is bounded, beside which the measured
    figures can be read.
    """

    copula: ClassCopula
    predict_proba: Predict = field(repr=False)
    edges: list[np.ndarray]  # inner quantile edges of each class's own-class probability
    name: str = "score_bin_copula"
    released: int = 0  # records anonymised, and of them those that fell back to a class draw
    fallbacks: int = 0

    @classmethod
    def fit(
        cls, copula: ClassCopula, predict_proba: Predict, x_train: np.ndarray, bins: int
    ) -> ScoreBinCopula:
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        p = np.asarray(predict_proba(x_train))
        c = p.argmax(axis=1)
        levels = np.arange(1, bins) / bins
        # a class the target never predicts on the training split keeps bin 0 for every score
        edges = [
            np.quantile(p[c == k, k], levels) if (c == k).any() else np.ones(bins - 1)
            for k in range(p.shape[1])
        ]
        return cls(copula, predict_proba, edges)

    @property
    def bins(self) -> int:
        return len(self.edges[0]) + 1

    def cells(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, bin) of each row of probabilities."""
        c = p.argmax(axis=1)
        own = p[np.arange(len(p)), c]
        return c, (np.stack(self.edges)[c] < own[:, None]).sum(axis=1)

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if len(x) == 0:
            return x.copy()
        rng = np.random.default_rng(seed)
        c, b = self.cells(np.asarray(self.predict_proba(x)))
        out = np.empty_like(x)
        todo = np.arange(len(x))
        for _ in range(BIN_ROUNDS):
            if not len(todo):
                break
            draws = self.copula.sample(c[todo], rng)
            dc, db = self.cells(np.asarray(self.predict_proba(draws)))
            ok = (dc == c[todo]) & (db == b[todo])
            out[todo[ok]] = draws[ok]
            todo = todo[~ok]
        self.released += len(x)
        self.fallbacks += len(todo)
        out[todo] = self.copula.sample(c[todo], rng)  # still a function of the cell alone
        return out

    def params(self) -> dict[str, float | int | str]:
        return {"bins": self.bins, "shrinkage": self.copula.shrinkage}


@dataclass
class AnomiGANAnonymizer:
    """A trained AnomiGAN encoder with its inference-time settings and prediction guard.

    The guard (`predict`, the frozen target's class prediction, and `max_resample`) re-draws
    the randomness of any record whose release the target would classify differently from the
    original, up to `max_resample` times. The encoder is trained to keep the prediction, but a
    sample near the decision boundary can still cross it; the hospital holds the target in the
    trusted zone, so checking costs one cheap forward pass. It reveals nothing the release does
    not already reveal: the predicted class is kept by design.
    """

    trained: TrainedEncoder
    predict: Predict | None = field(default=None, repr=False)
    max_resample: int = MAX_RESAMPLE
    noise_scale: float | None = None  # default: the encoder's noise_factor·δ
    n_noisy_layers: int = 1
    fixed_layer: int | None = None
    name: str = "anomigan"

    def _draw(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # an encoder whose r comes from a per-class prior needs the target's class per record
        classes = (
            np.asarray(self.predict(x))
            if self.predict is not None and getattr(self.trained, "prior", None) is not None
            else None
        )
        return self.trained.anonymize(
            x,
            rng_seed=int(rng.integers(0, 2**63 - 1)),
            noise_scale=self.noise_scale,
            n_noisy_layers=self.n_noisy_layers,
            fixed_layer=self.fixed_layer,
            classes=classes,
        )

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return guard_release(lambda z: self._draw(z, rng), x, self.predict, self.max_resample)

    def params(self) -> dict[str, float | int | str]:
        cfg = self.trained.config
        return {
            "lambda_e": cfg.lambda_e,
            "lambda_d": cfg.lambda_d,
            "delta": cfg.delta,
            "noise_scale": cfg.noise_scale if self.noise_scale is None else self.noise_scale,
            "n_noisy_layers": self.n_noisy_layers,
            "fixed_layer": -1 if self.fixed_layer is None else self.fixed_layer,
            "max_resample": self.max_resample if self.predict is not None else 0,
        }
