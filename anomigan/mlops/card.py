"""The model card every registered encoder version carries (artifact and registry description).

Built from measured figures only: what the encoder is for, what it does not promise, what it
was trained on (the splits' digests, never rows), its figures with their intervals next to the
references' measured on the same split, how often the guard re-draws, and how to retrain it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from anomigan.method.anonymizers import (
    SCORE_BINS,
    SCORE_DRAWS,
    AnomiGANAnonymizer,
    ClassCopula,
    Guarded,
    LaplaceDP,
    ScoreBinCopula,
    ScoreCopula,
)
from anomigan.method.target import TrainedTarget
from anomigan.mlops import tracking
from anomigan.mlops.prepare import Prepared, split_tags
from anomigan.privacy.evaluation import EvalData, evaluate

#: figures on the card, in order: (metric, higher is better)
CARD_METRICS = (
    ("prediction_agreement", True),
    ("score_rank_corr", True),
    ("corr_matrix_mad", False),
    ("tstr_accuracy", True),
    ("reid_rate_worst", False),
    ("reid_rate_oracle_multi", False),
    ("reid_rate_score", False),
    ("reid_rate_inversion", False),
)
#: the registry's description column holds at most this many characters
MAX_DESCRIPTION = 5000


def _cell(m: Mapping[str, float], key: str) -> str:
    v = m.get(key, float("nan"))
    if not math.isfinite(v):
        return "n/a"
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{v:.3f}"


def encoder_card(
    model_name: str,
    dataset: str,
    split: Mapping[str, str],
    digests: Mapping[str, str],
    params: Mapping[str, object],
    figures: Mapping[str, float],
    references: Mapping[str, Mapping[str, float]],
    redraw_rate: float,
    command: str,
) -> str:
    """Markdown for one encoder version; `figures` and `references` are `evaluate` results on
    the same targets and seed."""
    rows = [f"| {name} | " + " | ".join(_cell(m, k) for k, _ in CARD_METRICS) + " |"
            for name, m in {"this encoder": figures, **references}.items()]  # fmt: skip
    n = int(figures.get("n_anonymized_records", 0))
    lines = [
        f"# {model_name}: model card",
        "",
        "**Intended use.** Releasing tabular records of this data set's schema to a third party "
        "whose classifier should give the same answer, with the record harder to link back to "
        "a patient. The encoder anonymises raw records (validate → encode → anonymise → decode); "
        "each call draws fresh randomness.",
        "",
        "**What it does not promise.** AnomiGAN gives no formal guarantee: its output is not "
        "differentially private and not proven safe against any adversary. The privacy figures "
        "below are the success rates of the attacks anomigan runs (lower is more private), with "
        "95% Wilson intervals over the releases; a stronger attack may link more. The predicted "
        "class is kept by design, so it is revealed.",
        "",
        f"**Data.** `{dataset}`, split "
        + ", ".join(f"{k} {v}" for k, v in split.items())
        + "; dataset digests (MLflow inputs of the training run): "
        + ", ".join(f"{k} `{v}`" for k, v in digests.items())
        + ".",
        "",
        "**Training parameters.** "
        + ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
        + ".",
        "",
        f"**Measured on the test split** ({n} releases of its records; the references behind the "
        "same prediction guard, same targets and seed):",
        "",
        "| anonymiser | " + " | ".join(k for k, _ in CARD_METRICS) + " |",
        "|---" * (len(CARD_METRICS) + 1) + "|",
        *rows,
        "",
        f"**Prediction guard.** {redraw_rate:.1%} of releases changed the target's class at the "
        "first draw and were re-drawn.",
        "",
        f"**Reproduce.** `{command}`",
        "",
    ]
    return "\n".join(lines)


def description(card: str, artifact_uri: str) -> str:
    """The card as a registry description, cut to the registry's limit with a pointer."""
    if len(card) <= MAX_DESCRIPTION:
        return card
    tail = f"\n\n(cut: the whole card is {artifact_uri})"
    return card[: MAX_DESCRIPTION - len(tail)] + tail


def model_card(
    name: str,
    prep: Prepared,
    digests: dict[str, str],
    params: dict,
    anonymizer: AnomiGANAnonymizer,
    data: EvalData,
    target: TrainedTarget,
    figures: dict[str, float],
    seed: int,
    n_records: int,
    command: str,
) -> str:
    """The encoder's model card: its test figures next to the class copula's, the score
    copula's, the score-bin copula's and the Laplace mechanism's (λ 0.1) behind the same guard,
    on the same targets and seed."""
    guard = (target.predict, anonymizer.max_resample)
    copula = ClassCopula.fit(data.x_train, target.predict, prep.codec.model_blocks())
    references = {
        "class_copula + guard": Guarded(copula, *guard),
        f"score_copula {SCORE_DRAWS} draws + guard": Guarded(
            ScoreCopula(copula, target.predict_proba, SCORE_DRAWS), *guard
        ),
        f"score_bin_copula {SCORE_BINS} bins + guard": Guarded(
            ScoreBinCopula.fit(copula, target.predict_proba, data.x_train, SCORE_BINS), *guard
        ),
        "laplace λ 0.1 + guard": Guarded(LaplaceDP(0.1), *guard),
    }
    measured = {
        k: evaluate(a, data, target.predict_proba, n_records, seed=seed, throughput_rows=0)
        for k, a in references.items()
    }
    x = np.tile(data.x_targets, (max(1, -(-n_records // len(data.x_targets))), 1))
    first = AnomiGANAnonymizer(  # the first draw: the guard's predict gives classes only
        anonymizer.trained,
        anonymizer.predict,
        max_resample=0,
        noise_scale=anonymizer.noise_scale,
        n_noisy_layers=anonymizer.n_noisy_layers,
    ).anonymize(x, seed=seed)
    redraw = float(np.mean(target.predict(first) != target.predict(x)))
    tracking.log_metrics({"guard_redraw_rate": redraw})
    return encoder_card(name, prep.dataset.name, split_tags(prep), digests, params, figures,
                        measured, redraw, command)  # fmt: skip
