"""AnomiGAN's hyper-parameters: one dataclass, the single source of `train`'s options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anomigan.method.anonymizers import SCORE_DRAWS


def _field(default: object, help: str) -> Any:
    """A GANConfig field whose help text the CLI and the MLproject check read."""
    return field(default=default, metadata={"help": help})


@dataclass
class GANConfig:
    """Hyper-parameters (every one a `train` option); paper values for lambda_e, lambda_d,
    batch_size, lr, beta_1. The others were chosen on the validation split: docs/method.md."""

    lambda_e: float = _field(0.5, "closeness weight λe (to the anchor, see prior)")
    lambda_d: float = _field(0.5, "weight λd of the target, privacy and realism terms")
    delta: float = _field(0.6, "privacy level δ in [0, 1]: privacy weight, anchor, noise")
    steps: int = _field(4000, "training steps")
    batch_size: int = _field(10, "records whose release enters the losses each step")
    n_ref: int = _field(64, "other records per step: the soft attacks' candidates")
    lr: float = _field(1e-3, "Adam learning rate")
    beta_1: float = _field(0.5, "Adam beta_1")
    seed: int | None = _field(None, "seed for training and inference (None: OS entropy)")
    w_d2: float = _field(3.0, "multiplier on the target term L_D2 (paper: 1)")
    w_real: float = _field(0.2, "realism critic weight")
    w_link: float = _field(1.0, "adversarial linker D1 inside the privacy term")
    w_nce: float = _field(1.0, "soft nearest-record attacks inside the privacy term")
    tau: float = _field(0.1, "soft-attack temperature, relative to the mean distance")
    log_every: int = _field(100, "steps per logged loss point (0: none)")
    variance_passes: int = _field(4, "passes over the training set to record layer variances")
    prior: str = _field(
        "score",
        "where r comes from: copula (a same-class synthetic record), score (of score_draws of "
        "them, the nearest in the target's score) or uniform (the paper)",
    )
    d2_loss: str = _field("kl", "target term: ce (arg-max class), kl or logit (the score)")
    w_corr: float = _field(3.0, "weight of the correlation-structure fidelity term")
    noise_factor: float = _field(0.25, "inference noise variance, in units of δ·var_l (paper: 1)")
    corr_target: str = _field(
        "blend", "correlations the releases match: records, prior (the draws r) or their δ-blend"
    )
    score_draws: int = _field(
        SCORE_DRAWS, "prior score: same-class draws r is the nearest in the target's score of"
    )

    @property
    def noise_scale(self) -> float:
        """The inference noise's variance, in units of each layer's recorded variance."""
        return self.noise_factor * self.delta

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if self.d2_loss not in D2_LOSSES:
            raise ValueError(f"d2_loss must be one of {', '.join(D2_LOSSES)}, got {self.d2_loss!r}")
        if self.score_draws < 1:
            raise ValueError(f"score_draws must be >= 1, got {self.score_draws}")
        if self.corr_target not in CORR_TARGETS:
            raise ValueError(
                f"corr_target must be one of {', '.join(CORR_TARGETS)}, got {self.corr_target!r}"
            )

    @classmethod
    def from_dict(cls, d: dict) -> GANConfig:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown GANConfig fields: {', '.join(unknown)}")
        return cls(**d)


PRIORS = ("copula", "score", "uniform")
D2_LOSSES = ("ce", "kl", "logit")
CORR_TARGETS = ("records", "prior", "blend")
#: synthetic records per class drawn once for training (inference draws fresh ones)
PRIOR_BANK = 2048
