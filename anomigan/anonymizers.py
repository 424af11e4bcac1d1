"""One protocol for every anonymiser: AnomiGAN, the Laplace mechanism, and reference baselines.

All of them map model-space records (the codec's [0, 1]^d) to anonymised model-space records,
so the metrics, attacks, plots, tuning and serving never need to know which one they hold. The
codec turns raw records into model space and back at the edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Anonymizer(Protocol):
    """x (n, d) in model space -> x^ (n, d); fresh randomness per call unless `seed` is given."""

    name: str

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
    predict: object = field(repr=False)  # x -> class index (the target's prediction)
    noise: float = 0.01
    name: str = "class_prototype"

    @classmethod
    def fit(cls, x_train: np.ndarray, predict, noise: float = 0.01) -> ClassPrototype:
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

    Uses diffprivlib's Laplace mechanism with sensitivity 1 (the range of a scaled feature), so
    ε = 1/λ per feature and d/λ per record by sequential composition. Like the paper, the noise
    is unbounded: released values may leave [0, 1].
    """

    scale: float
    name: str = "laplace_dp"

    @property
    def epsilon_per_feature(self) -> float:
        return 1.0 / self.scale

    def epsilon_per_record(self, n_features: int) -> float:
        return n_features / self.scale

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        from diffprivlib.mechanisms import Laplace

        rng = np.random.default_rng(seed)
        mech = Laplace(
            epsilon=self.epsilon_per_feature,
            sensitivity=1.0,
            random_state=np.random.RandomState(rng.integers(0, 2**31 - 1)),
        )
        flat = np.asarray(x, dtype=np.float64).ravel()
        noisy = np.fromiter((mech.randomise(v) for v in flat), dtype=np.float64, count=flat.size)
        return noisy.reshape(np.shape(x)).astype(np.float32)

    def params(self) -> dict[str, float | int | str]:
        return {"lambda": self.scale, "epsilon_per_feature": self.epsilon_per_feature}


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

    trained: object  # anomigan.gan.TrainedEncoder
    predict: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    max_resample: int = 10
    noise_scale: float | None = None  # default: the encoder's δ
    n_noisy_layers: int = 1
    fixed_layer: int | None = None
    name: str = "anomigan"

    def _draw(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.trained.anonymize(
            x,
            rng_seed=int(rng.integers(0, 2**63 - 1)),
            noise_scale=self.noise_scale,
            n_noisy_layers=self.n_noisy_layers,
            fixed_layer=self.fixed_layer,
        )

    def anonymize(self, x: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Draw a release per record; with the guard, re-draw changed ones up to `max_resample`
        times and keep the first draw that keeps the class (else the last one).

        Re-draws go in rounds of 1, 2, 4, ... candidates per still-changed record, taken in
        order: the same result as one re-draw at a time (the draws are independent), in a few
        large encoder calls instead of up to `max_resample` small ones.
        """
        rng = np.random.default_rng(seed)
        out = self._draw(x, rng)
        if self.predict is None or self.max_resample <= 0 or len(x) == 0:
            return out
        both = self.predict(np.concatenate([x, out]))  # one forward pass for both checks
        wanted, changed = both[: len(x)], np.flatnonzero(both[len(x) :] != both[: len(x)])
        left, per_record = self.max_resample, 1
        while changed.size and left > 0:
            k = min(per_record, left)
            candidates = self._draw(np.repeat(x[changed], k, axis=0), rng)
            kept = self.predict(candidates).reshape(-1, k) == wanted[changed, None]
            pick = np.where(kept.any(axis=1), kept.argmax(axis=1), k - 1)
            out[changed] = candidates.reshape(len(changed), k, -1)[np.arange(len(changed)), pick]
            changed = changed[~kept.any(axis=1)]
            left, per_record = left - k, 2 * per_record
        return out

    def params(self) -> dict[str, float | int | str]:
        cfg = self.trained.config
        return {
            "lambda_e": cfg.lambda_e,
            "lambda_d": cfg.lambda_d,
            "delta": cfg.delta,
            "noise_scale": cfg.delta if self.noise_scale is None else self.noise_scale,
            "n_noisy_layers": self.n_noisy_layers,
            "fixed_layer": -1 if self.fixed_layer is None else self.fixed_layer,
            "max_resample": self.max_resample if self.predict is not None else 0,
        }
