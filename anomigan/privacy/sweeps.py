"""The privacy-utility sweeps of `anomigan evaluate`: every setting (AnomiGAN's defaults,
ablations, δ and λe, the Laplace mechanism, the references) on several splits, with figures as
means over the splits and their intervals, plus the paper's Table 1."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from anomigan.method.anonymizers import (
    MAX_RESAMPLE,
    SCORE_BINS,
    AnomiGANAnonymizer,
    Anonymizer,
    ClassCopula,
    ClassPrototype,
    CopulaBlend,
    Guarded,
    Identity,
    LaplaceDP,
    Predict,
    ScoreBinCopula,
    ScoreCopula,
    is_guarded,
)
from anomigan.privacy import attacks, metrics
from anomigan.privacy.evaluation import AttackConfig, EvalData, evaluate, throughput

if TYPE_CHECKING:  # annotations only (the encoder's module loads TensorFlow, `_settings` trains)
    from anomigan.method.encoder import TrainedEncoder
    from anomigan.privacy.evaluation import SettingResult, Table1Row

log = logging.getLogger("anomigan.privacy.sweeps")


@dataclass
class SweepConfig:
    """What the `evaluate` job measures; `quick_mode()` runs the same code path in minutes."""

    deltas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    lambda_es: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    dp_scales: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    blend_as: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    score_draws: tuple[int, ...] = (2, 4, 16)  # the score copula's draws per release
    score_bins: tuple[int, ...] = (SCORE_BINS,)  # the score-bin copula's bins per class
    # δ is a training parameter (it weighs the privacy terms), so each δ gets its own encoder;
    # False varies only the inference noise of the base encoder (a cheaper, weaker sweep)
    retrain_delta: bool = True
    # training steps of the sweeps' encoders and of the defaults' encoder (None: GANConfig's,
    # what `train` registers)
    steps: int | None = 2000
    defaults_steps: int | None = None
    n_records: int = 1000  # anonymised target records per setting (the paper's 1000 cases)
    n_games: int = 10_000  # games per distinguishing game
    table1_repeats: int = 1000  # repeats of the fixed test data per Table 1 row
    table1_noise_scale: float = 1.0  # Table 1 adds each layer's recorded variance, scaled
    oracle_draws: int = AttackConfig.oracle_draws
    inversion_known: float = AttackConfig.inversion_known
    inversion_aug: int = AttackConfig.inversion_aug
    max_resample: int = MAX_RESAMPLE  # the prediction guard, for AnomiGAN and every reference
    n_seeds: int = 3  # splits (and encoder seeds): headline figures are means over them
    seed: int = 0
    quick: bool = False

    @classmethod
    def quick_mode(cls, **overrides: Any) -> SweepConfig:
        base: dict[str, Any] = dict(  # keyword arguments of `cls`, of every field's type
            deltas=(0.3, 1.0),
            lambda_es=(0.5, 1.0),
            retrain_delta=False,
            dp_scales=(0.1, 1.0),
            blend_as=(0.2, 0.8),
            score_draws=(4,),
            steps=50,
            defaults_steps=50,
            n_records=100,
            n_games=1000,
            table1_repeats=10,
            oracle_draws=2,
            inversion_aug=1,
            n_seeds=2,
            quick=True,
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    @property
    def attack(self) -> AttackConfig:
        return AttackConfig(self.oracle_draws, self.inversion_known, self.inversion_aug)

    def params(self) -> dict[str, float | int | str | bool]:
        """Scalars for MLflow (grids as comma-separated text)."""
        out: dict[str, float | int | str | bool] = {}
        for k, v in self.__dict__.items():
            out[f"sweep_{k}"] = ",".join(f"{g:g}" for g in v) if isinstance(v, tuple) else v
        return out


@dataclass
class Split:
    """One split of the data set with the target trained on it."""

    split_seed: int
    data: EvalData
    target: Any  # anomigan.method.target.TrainedTarget
    blocks: list[tuple[int, int, bool]] | None = None  # RecordCodec.model_blocks()


def _json_matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(m)]


def table1(trained: TrainedEncoder, data: EvalData, predict_proba: Predict, repeats: int,
           noise_scale: float, seed: int = 0) -> list[Table1Row]:  # fmt: skip
    """The paper's Table 1: the fixed test data anonymised `repeats` times with the recorded
    variance (x noise_scale) injected into one encoder layer at a time; first row: no noise."""
    x = np.tile(data.x_targets, (repeats, 1))
    y = np.tile(data.y_targets, repeats)
    p_orig = np.tile(predict_proba(data.x_targets), (repeats, 1))
    rows: list[Table1Row] = []
    for layer in [None, *range(trained.variances.n_layers)]:
        anon = AnomiGANAnonymizer(
            trained, noise_scale=0.0 if layer is None else noise_scale, fixed_layer=layer
        )
        x_hat = anon.anonymize(x, seed=seed + (0 if layer is None else layer + 1))
        p = predict_proba(x_hat)
        acc, auc = metrics.accuracy_auc(y, p)
        rows.append(
            {
                "layer": "none" if layer is None else str(layer + 1),
                "correlation": metrics.correlation(x, x_hat),
                "accuracy": acc,
                "auc": auc,
                "prediction_agreement": metrics.prediction_agreement(p_orig, p),
                "n_records": len(x),
            }
        )
    return rows


@dataclass
class _Setting:
    """One anonymiser to measure: what the nested run says about it, and how to build it."""

    name: str
    method: str  # anomigan, laplace_dp, class_copula, copula_blend, score_copula, ...
    anonymizer: str  # the `anonymizer` param: which variant (e.g. anomigan_guard_off)
    sweep: str
    param_name: str
    param: float
    build: Callable[[], Anonymizer]
    extra: dict[str, float] = field(default_factory=dict)
    train_s: Callable[[], float | None] = lambda: None


def _settings(split: Split, config: SweepConfig, overrides: dict[str, Any],
              index: int) -> list[_Setting]:  # fmt: skip
    """Every setting of one split, in report order; encoders train once, when first built."""
    from anomigan.method.gan import GANConfig, train_anomigan

    data, target = split.data, split.target
    defaults = GANConfig()
    seed = overrides.get("seed", config.seed) + index  # encoder seeds vary with the split
    cache: dict[tuple[float, float, bool], tuple[TrainedEncoder, float]] = {}  # λe, δ, defaults

    def trained_at(lambda_e: float, delta: float,
                   defaults: bool = False) -> tuple[TrainedEncoder, float]:  # fmt: skip
        key = (lambda_e, delta, defaults)
        if key not in cache:
            kw = {**overrides, "lambda_e": lambda_e, "delta": delta, "seed": seed}
            steps = config.defaults_steps if defaults else config.steps
            if steps is not None:
                kw["steps"] = steps
            start = time.perf_counter()
            enc = train_anomigan(data.x_train, target.model, GANConfig(**kw), blocks=split.blocks)
            cache[key] = (enc, time.perf_counter() - start)
        return cache[key]

    guard = (target.predict, config.max_resample) if config.max_resample > 0 else (None, 0)

    def guarded(inner: Anonymizer) -> Anonymizer:
        return Guarded(inner, *guard) if guard[0] is not None else inner

    def dp_guard(scale: float) -> Anonymizer:
        return guarded(LaplaceDP(scale))

    copula: list[ClassCopula] = []

    def cop() -> ClassCopula:
        if not copula:
            copula.append(ClassCopula.fit(data.x_train, target.predict, split.blocks))
        return copula[0]

    def blend(a: float) -> Anonymizer:
        return guarded(CopulaBlend(cop(), a))

    def score(m: int) -> Anonymizer:
        return guarded(ScoreCopula(cop(), target.predict_proba, m))

    def score_bin(bins: int) -> Anonymizer:
        return guarded(ScoreBinCopula.fit(cop(), target.predict_proba, data.x_train, bins))

    def prototype() -> Anonymizer:
        return guarded(ClassPrototype.fit(data.x_train, target.predict))

    bl, bd, nf = defaults.lambda_e, defaults.delta, defaults.noise_factor
    out: list[_Setting] = []

    def anomigan(name: str, anonymizer: str, sweep: str, pname: str, pval: float, lam: float,
                 delta: float, defaults: bool = False, **kw: Any) -> None:  # fmt: skip
        # inference_delta: the noise of that δ (nf·δ·var_l) on this encoder, trained at `delta`
        idelta = kw.pop("inference_delta", delta)
        kw.setdefault("noise_scale", nf * idelta)
        out.append(
            _Setting(
                name,
                "anomigan",
                anonymizer,
                sweep,
                pname,
                pval,
                lambda: AnomiGANAnonymizer(trained_at(lam, delta, defaults)[0], **kw),
                {"inference_delta": idelta},
                lambda: trained_at(lam, delta, defaults)[1],
            )
        )

    g: dict[str, Any] = {"predict": guard[0], "max_resample": guard[1]}  # the guard's kwargs
    anomigan("anomigan-defaults", "anomigan", "defaults", "delta", bd, bl, bd, True, **g)
    anomigan("anomigan-guard-off", "anomigan_guard_off", "ablation", "delta", bd, bl, bd, True)
    anomigan("anomigan-noise-off", "anomigan_noise_off", "ablation", "delta", bd, bl, bd, True,
             noise_scale=0.0, **g)  # fmt: skip
    for delta in config.deltas:
        if config.retrain_delta:
            anomigan(f"anomigan-delta-{delta:g}", "anomigan", "delta", "delta", delta, bl, delta,
                     **g)  # fmt: skip
        else:
            anomigan(f"anomigan-delta-{delta:g}", "anomigan", "delta", "delta", delta, bl, bd,
                     inference_delta=delta, **g)  # fmt: skip
    for lambda_e in config.lambda_es:
        anomigan(f"anomigan-lambda_e-{lambda_e:g}", "anomigan", "lambda_e", "lambda_e", lambda_e,
                 lambda_e, bd, **g)  # fmt: skip
    d = data.x_train.shape[1]
    for scale in config.dp_scales:
        eps = {"epsilon_per_record": LaplaceDP(scale).epsilon_per_record(d)}
        out.append(_Setting(f"dp-lambda-{scale:g}", "laplace_dp", "laplace_dp", "dp", "lambda",
                            scale, partial(LaplaceDP, scale), eps))  # fmt: skip
        out.append(_Setting(f"dp-guard-lambda-{scale:g}", "laplace_dp", "laplace_dp_guard",
                            "dp_guard", "lambda", scale, partial(dp_guard, scale), {}))  # fmt: skip
    out.append(_Setting("class_copula", "class_copula", "class_copula", "reference", "none",
                        0.0, lambda: guarded(cop())))  # fmt: skip
    for a in config.blend_as:
        out.append(_Setting(f"copula_blend-{a:g}", "copula_blend", "copula_blend", "blend",
                            "blend_a", a, partial(blend, a)))  # fmt: skip
    for m in config.score_draws:
        out.append(_Setting(f"score_copula-{m}", "score_copula", "score_copula", "score",
                            "n_draws", m, partial(score, m)))  # fmt: skip
    for b in config.score_bins:
        out.append(_Setting(f"score_bin_copula-{b}", "score_bin_copula", "score_bin_copula",
                            "score_bin", "bins", b, partial(score_bin, b)))  # fmt: skip
    out.append(_Setting("identity", "identity", "identity", "reference", "none", 0.0, Identity))
    out.append(_Setting("class_prototype", "class_prototype", "class_prototype", "reference",
                        "none", 0.0, prototype))  # fmt: skip
    return out


def _mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval over seeds (NaN for a single seed)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) < 2:
        return float(v.mean()), float("nan")
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half)


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every figure over the seeds, with `<figure>_seed_ci95` (the interval's half-width)
    for every figure that is not itself an interval bound."""
    out: dict[str, float] = {}
    for k in per_seed[0]:
        mean, half = _mean_ci([m.get(k, float("nan")) for m in per_seed])
        out[k] = mean
        if not k.endswith(("_ci_low", "_ci_high")):
            out[f"{k}_seed_ci95"] = half
    out["n_seeds"] = float(len(per_seed))
    return out


def run_sweeps(
    splits: list[Split],
    config: SweepConfig,
    gan_overrides: dict[str, Any] | None = None,
    attribute: tuple[list[int], int] | None = None,
    on_setting: Callable[[SettingResult], None] | None = None,
) -> dict[str, Any]:
    """Every setting of the evaluation on every split; returns a JSON-able dict.

    A setting's `metrics` are means over the splits (`per_seed` keeps each split's figures);
    `on_setting(setting)` is called once per setting after the last split (the job logs it as
    a nested run). AnomiGAN is retrained for each λe (and each δ when `retrain_delta`); the
    references need no training. Table 1, Table 2 and the heatmaps use the first split.
    """
    overrides = {k: v for k, v in (gan_overrides or {}).items() if v is not None}
    per_seed: dict[str, list[dict[str, float]]] = {}
    plan: list[_Setting] = []
    for index, split in enumerate(splits):
        settings = _settings(split, config, overrides, index)
        plan = plan or settings
        measured: dict[tuple[str, int, str], dict[str, float]] = {}
        for st in settings:
            anonymizer = st.build()
            # the base encoder sits in both sweeps: measure it once (an encoder is one object)
            key = (st.anonymizer, id(getattr(anonymizer, "trained", None)),
                   json.dumps(anonymizer.params(), sort_keys=True))  # fmt: skip
            if key not in measured:
                measured[key] = evaluate(
                    anonymizer,
                    split.data,
                    split.target.predict_proba,
                    config.n_records,
                    seed=config.seed + index,
                    extended=True,
                    n_games=config.n_games,
                    throughput_rows=0,
                    attribute=attribute,
                    attack=config.attack,
                )
                if (secs := st.train_s()) is not None:
                    measured[key]["train_seconds"] = secs
            per_seed.setdefault(st.name, []).append(dict(measured[key]))
            log.info("split %d: evaluated %s", split.split_seed, st.name)

    built = {st.name: st.build() for st in plan}  # first split's anonymisers: params, heatmaps
    settings_out: list[SettingResult] = []
    for st in plan:
        setting: SettingResult = {
            "name": st.name,
            "method": st.method,
            "anonymizer": st.anonymizer,
            "sweep": st.sweep,
            "param_name": st.param_name,
            "param": float(st.param),
            "params": {
                "anonymizer": st.anonymizer,
                "guard": int(is_guarded(built[st.name])),
                **built[st.name].params(),
                **st.extra,
            },
            "metrics": aggregate(per_seed[st.name]),
            "per_seed": per_seed[st.name],
        }
        settings_out.append(setting)
        if on_setting is not None:
            on_setting(setting)

    first = splits[0]
    data = first.data
    base_anon = built["anomigan-defaults"]
    assert isinstance(base_anon, AnomiGANAnonymizer)  # `_settings` builds it unguarded
    assert data.x_val is not None  # `EvalData.__post_init__` fills it
    base_enc, base_seconds = base_anon.trained, per_seed["anomigan-defaults"][0]["train_seconds"]
    start = time.perf_counter()
    base_anon.anonymize(data.x_targets, seed=config.seed)
    run_seconds = time.perf_counter() - start
    lap = config.dp_scales[0]
    heat = {
        f"anomigan defaults (δ={base_enc.config.delta:g})": base_anon.anonymize(
            data.x_train, seed=config.seed
        ),
        f"laplace_dp + guard (λ={lap:g})": built[f"dp-guard-lambda-{lap:g}"].anonymize(
            data.x_train, seed=config.seed
        ),
        "class_copula + guard": built["class_copula"].anonymize(data.x_train, seed=config.seed),
        "class_prototype": built["class_prototype"].anonymize(data.x_train, seed=config.seed),
    }
    return {
        "n_train": len(data.x_train),
        "n_val": len(data.x_val),
        "n_test": len(data.x_test),
        "n_features": data.x_train.shape[1],
        "split": data.split,
        "split_seeds": [s.split_seed for s in splits],
        "random_baseline": attacks.random_baseline(len(data.x_all)),
        "n_classes": int(first.target.predict_proba(data.x_train[:1]).shape[1]),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()},
        "gan_config": {k: v for k, v in overrides.items()},
        # the defaults' encoder: the δ sweep's λe and the λe sweep's δ (report titles)
        "base": {"lambda_e": base_enc.config.lambda_e, "delta": base_enc.config.delta},
        "settings": settings_out,
        "table1": table1(
            base_enc,
            data,
            first.target.predict_proba,
            config.table1_repeats,
            config.table1_noise_scale,
            config.seed,
        ),
        "table2": {
            "train_steps": int(base_enc.config.steps),
            "train_seconds": base_seconds,
            "run_seconds_test_split": run_seconds,
            "anonymize_rows_per_second": throughput(base_anon, data.x_all),
        },
        "corr_original": _json_matrix(metrics._corr_matrix(data.x_train)),
        "corr_anonymized": {k: _json_matrix(metrics._corr_matrix(v)) for k, v in heat.items()},
    }
