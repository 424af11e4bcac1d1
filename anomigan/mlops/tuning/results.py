"""A study's results: one row per trial, the promotion policy over them, the references
every trial is compared with, and the Pareto front logged as CSVs and a plot."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from anomigan.method.anonymizers import (
    SCORE_BINS,
    SCORE_DRAWS,
    Anonymizer,
    ClassCopula,
    CopulaBlend,
    Guarded,
    LaplaceDP,
    ScoreBinCopula,
    ScoreCopula,
)
from anomigan.mlops import tracking
from anomigan.mlops.tuning.settings import (
    AGREEMENT,
    BAR_REFERENCE_LAMBDA,
    CORR_MAD,
    TuneSettings,
    n_finished,
)
from anomigan.mlops.tuning.storage import claim_lock
from anomigan.privacy.evaluation import evaluate
from anomigan.privacy.plots import pareto_front_figure

log = logging.getLogger("anomigan.mlops.tuning")


def trial_rows(study: optuna.Study, privacy: str) -> list[dict[str, Any]]:
    """One row per trial: state, objectives, params, MLflow run, Pareto membership."""
    front = {t.number for t in study.best_trials} if n_finished(study) else set()
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial_number": t.number, "state": t.state.name}
        values = t.values if t.state == TrialState.COMPLETE else None
        for i, name in enumerate((AGREEMENT, privacy, CORR_MAD)):
            row[name] = values[i] if values else float("nan")
        row["pareto"] = t.number in front
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row["mlflow_run_id"] = t.user_attrs.get("mlflow_run_id", "")
        row["baseline"] = bool(t.user_attrs.get("baseline"))
        rows.append(row)
    return rows


def choose_champion(
    rows: list[dict[str, Any]], privacy: str, min_agreement: float, max_corr_mad: float
) -> tuple[dict[str, Any] | None, str]:
    """The promotion policy: among Pareto trials meeting both bars, the lowest privacy figure
    (ties: higher agreement, then lower corr_matrix_mad, then the earlier trial).

    Restricting to the Pareto front loses nothing: a trial meeting the bars is dominated only
    by trials that meet them too.
    """
    front = [r for r in rows if r["pareto"]]
    if not front:
        return None, "no trial completed, so the study has no Pareto front"
    ok = [r for r in front if r[AGREEMENT] >= min_agreement and r[CORR_MAD] <= max_corr_mad]
    if not ok:
        return None, (
            f"no Pareto trial has {AGREEMENT} >= {min_agreement} and {CORR_MAD} <= "
            f"{max_corr_mad} (best agreement {max(r[AGREEMENT] for r in front):.3f}, lowest "
            f"{CORR_MAD} {min(r[CORR_MAD] for r in front):.3f} among {len(front)} Pareto trials)"
        )
    best = min(ok, key=lambda r: (r[privacy], -r[AGREEMENT], r[CORR_MAD], r["trial_number"]))
    return best, (
        f"trial {best['trial_number']} has the lowest {privacy} ({best[privacy]:.3f}) of the "
        f"{len(ok)} Pareto trials with {AGREEMENT} >= {min_agreement} and {CORR_MAD} <= "
        f"{max_corr_mad}"
    )


def log_results(
    rows: list[dict[str, Any]],
    s: TuneSettings,
    chosen: int | None,
    references: list[dict[str, Any]] | None = None,
) -> None:
    """The Pareto front as a CSV and a plot, every trial as a CSV, the references measured on
    the same validation split as a CSV and on the plot (artifacts under pareto/)."""
    frame = pd.DataFrame(rows)
    with tempfile.TemporaryDirectory() as tmp:
        frame.to_csv(Path(tmp) / "trials.csv", index=False)
        front = frame[frame["pareto"]] if len(frame) else frame
        front.to_csv(Path(tmp) / "pareto.csv", index=False)
        if references:
            pd.DataFrame(references).to_csv(Path(tmp) / "references.csv", index=False)
        tracking.log_dir(tmp, "pareto")
    done = [r for r in rows if r["state"] == "COMPLETE"]
    fig = pareto_front_figure(
        agreement=[r[AGREEMENT] for r in done],
        privacy=[r[s.privacy_objective] for r in done],
        corr_mad=[r[CORR_MAD] for r in done],
        on_front=[r["pareto"] for r in done],
        privacy_name=s.privacy_objective,
        min_agreement=s.min_agreement,
        chosen=next((i for i, r in enumerate(done) if r["trial_number"] == chosen), None),
        references={
            r["reference"]: (r[s.privacy_objective], r[AGREEMENT]) for r in references or []
        },
    )
    tracking.log_figure(fig, "pareto/pareto_front.png")


#: the references every study is compared with, measured like a trial: (name, anonymiser kind,
#: parameter)
REFERENCES = (
    ("class_copula", "class_copula", None),
    ("copula_blend_0.2", "copula_blend", 0.2),
    ("copula_blend_0.4", "copula_blend", 0.4),
    (f"score_copula_{SCORE_DRAWS}", "score_copula", SCORE_DRAWS),
    (f"score_bin_copula_{SCORE_BINS}", "score_bin_copula", SCORE_BINS),
    (f"laplace_{BAR_REFERENCE_LAMBDA:g}_guard", "laplace_dp", BAR_REFERENCE_LAMBDA),
)


def _code_digest() -> str:
    """The sources the reference figures come from (codec, anonymisers, attacks, metrics)."""
    import anomigan

    root = Path(anomigan.__file__).parent
    h = hashlib.sha256()
    for path in sorted(
        p for layer in ("data", "method", "privacy") for p in root.glob(f"{layer}/**/*.py")
    ):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def reference_key(s: TuneSettings, target_uri: str, digests: dict[str, str]) -> str:
    """The study attribute holding the reference rows measured for these settings, splits,
    target and code: a resumed tune reads them back instead of measuring them again, and
    keeps the promotion bar the study started with."""
    spec = {
        "references": REFERENCES,
        "score": (SCORE_DRAWS, SCORE_BINS),
        "target": target_uri,
        "splits": digests,
        "code": _code_digest(),
        **{
            k: getattr(s, k)
            for k in ("label", "seed", "n_records", "max_resample", "privacy_objective")
        },  # fmt: skip
    }
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return "references_" + hashlib.sha256(blob).hexdigest()[:16]


def study_reference_rows(
    study: optuna.Study, key: str, data, target, codec, s: TuneSettings, storage_spec: str
) -> list[dict[str, Any]]:
    """`reference_rows`, read from the study when an earlier tune stored them under `key`.

    Measured under a lock of their own, so tunes started at once on a fresh study (other
    machines, or processes sharing a journal) measure them once and the rest wait and read
    them, without holding up trial claims on the study.
    """
    stored = study.user_attrs.get(key)
    if stored is None:
        with claim_lock(storage_spec, f"{study.study_name}/{key}"):
            stored = study.user_attrs.get(key)  # another tune may have stored them meanwhile
            if stored is None:
                log.info("reference rows: measuring them for study attribute %s", key)
                rows = reference_rows(data, target, codec, s)
                study.set_user_attr(key, rows)
                return rows
    log.info("reference rows: read from study attribute %s", key)
    return stored


def reference_rows(data, target, codec, s: TuneSettings) -> list[dict[str, Any]]:
    """The references behind the same prediction guard, evaluated on the validation split with
    the trials' protocol: what a trial must beat to be worth promoting."""
    copula = ClassCopula.fit(data.x_train, target.predict, codec.model_blocks())
    build: dict[str, Callable[[Any], Anonymizer]] = {
        "class_copula": lambda _: copula,
        "copula_blend": lambda a: CopulaBlend(copula, a),
        "score_copula": lambda m: ScoreCopula(copula, target.predict_proba, m),
        "score_bin_copula": lambda b: ScoreBinCopula.fit(
            copula, target.predict_proba, data.x_train, b
        ),
        "laplace_dp": LaplaceDP,
    }
    rows = []
    for name, kind, param in REFERENCES:
        anonymizer = Guarded(build[kind](param), target.predict, s.max_resample)
        figures = evaluate(anonymizer, data.on("validation"), target.predict_proba,
                           s.n_records, seed=s.seed, throughput_rows=0)  # fmt: skip
        keys = (AGREEMENT, s.privacy_objective, CORR_MAD)
        rows.append({"reference": name, **{k: float(figures[k]) for k in keys}})
    return rows
