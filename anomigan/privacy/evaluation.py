"""Privacy-utility evaluation of any anonymiser on a fixed split, the paper's protocol.

The test split is anonymised repeatedly until at least `n_records` anonymised records exist
(the paper's "1000 cases"); utility figures compare the target's answers on originals and
releases, privacy figures come from attacks that try to link releases back to patients.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from anomigan.method.anonymizers import (
    MAX_RESAMPLE,
    AnomiGANAnonymizer,
    Anonymizer,
    ClassCopula,
    ClassPrototype,
    CopulaBlend,
    Guarded,
    Identity,
    LaplaceDP,
    is_guarded,
)
from anomigan.privacy import attacks, metrics

log = logging.getLogger("anomigan.privacy.evaluation")

SPLITS = ("validation", "test")


@dataclass
class EvalData:
    """Model-space records of a split with integer labels; `x_all` is the whole data set.

    `split` names whose records are the targets: `validation` (carved from the training
    split) for every choice made from measurements, `test` only for reporting.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    split: str = "test"
    blocks: list[tuple[int, int, bool]] | None = None  # RecordCodec.model_blocks()

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {self.split!r}")
        if self.x_val is None:
            self.x_val = np.zeros((0, self.x_train.shape[1]), np.float32)
            self.y_val = np.zeros(0, np.int64)
        if self.split == "validation" and len(self.x_val) == 0:
            raise ValueError("no validation records to evaluate on")

    def on(self, split: str) -> EvalData:
        """The same records with another split's records as the targets."""
        return replace(self, split=split)

    @property
    def x_all(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_val, self.x_test])

    @property
    def x_targets(self) -> np.ndarray:
        return self.x_test if self.split == "test" else self.x_val

    @property
    def y_targets(self) -> np.ndarray:
        return self.y_test if self.split == "test" else self.y_val

    @property
    def target_index(self) -> np.ndarray:
        """Positions of the target records inside `x_all`."""
        first = len(self.x_train) + (len(self.x_val) if self.split == "test" else 0)
        return first + np.arange(len(self.x_targets))

    def inversion_known(self, fraction: float, seed: int | None) -> np.ndarray:
        """The training records the inversion adversary holds: a seeded `fraction` of them."""
        n = len(self.x_train)
        k = max(1, min(n, int(round(fraction * n))))
        return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def throughput(anonymizer: Anonymizer, x: np.ndarray, n_rows: int = 20_000) -> float:
    """Rows per second when anonymising `n_rows` records in one call (after a warm-up call)."""
    big = np.tile(x, (math.ceil(n_rows / len(x)), 1))[:n_rows]
    anonymizer.anonymize(big[:256], seed=0)
    start = time.perf_counter()
    anonymizer.anonymize(big, seed=1)
    return n_rows / max(time.perf_counter() - start, 1e-9)


@dataclass(frozen=True)
class AttackConfig:
    """How hard the linkage adversaries try; one place for their constants."""

    oracle_draws: int = 8  # re-anonymisations per candidate of the averaging oracle
    inversion_known: float = 0.5  # share of the training split the inversion adversary holds
    inversion_aug: int = 4  # anonymisations per known record it learns from


def evaluate(
    anonymizer: Anonymizer,
    data: EvalData,
    predict_proba,
    n_records: int = 1000,
    seed: int | None = 0,
    extended: bool = False,
    n_games: int = 10_000,
    throughput_rows: int = 20_000,
    attribute: tuple[list[int], int] | None = None,
    attack: AttackConfig | None = None,
) -> dict[str, float]:
    """Every figure the `train` run logs, measured on the same records for every anonymiser.

    The targets (`data.split`) are anonymised repeatedly until at least `n_records` releases
    exist. `predict_proba` is the frozen target (model-space records -> class probabilities).
    `seed` fixes the anonymiser's randomness and the attacks' so runs compare like for like.
    Every linkage attack runs, and `reid_rate_worst` is their maximum; `extended` adds the
    distinguishing games, distance to closest record and attribute inference (given (known
    model columns, sensitive model column)). `throughput_rows=0` skips the timing.
    """
    attack = attack or AttackConfig()
    rng = np.random.default_rng(seed)

    def draw() -> int | None:
        return None if seed is None else int(rng.integers(0, 2**31 - 1))

    x_t, y_t = data.x_targets, data.y_targets
    repeats = max(1, math.ceil(n_records / len(x_t)))
    x = np.tile(x_t, (repeats, 1))
    y = np.tile(y_t, repeats)
    source = np.tile(data.target_index, repeats)

    x_hat = anonymizer.anonymize(x, seed=draw())
    rows_per_second = (
        throughput(anonymizer, data.x_all, throughput_rows) if throughput_rows else None
    )

    p_orig, p_anon = predict_proba(x_t), predict_proba(x_hat)
    p_orig_rep = np.tile(p_orig, (repeats, 1))
    target_acc, target_auc = metrics.accuracy_auc(y_t, p_orig)
    anon_acc, anon_auc = metrics.accuracy_auc(y, p_anon)
    x_train_hat = anonymizer.anonymize(data.x_train, seed=draw())
    x_all = data.x_all
    attack_rng = np.random.default_rng(draw())

    def fresh(z: np.ndarray) -> np.ndarray:
        return anonymizer.anonymize(z, seed=int(attack_rng.integers(0, 2**31 - 1)))

    means = attacks.oracle_means(fresh, x_all, attack.oracle_draws, attack_rng)
    logits_all = attacks.target_logits(predict_proba(x_all))
    logits_anon = attacks.target_logits(p_anon)
    inversion = attacks.reid_rate_inversion(
        fresh,
        x_hat,
        x_all,
        source,
        data.inversion_known(attack.inversion_known, seed),
        attacks.inversion_models(0 if seed is None else seed),
        n_aug=attack.inversion_aug,
    )
    rates = {
        "reid_rate": attacks.reid_rate(x_hat, x_all, source),
        "reid_rate_oracle": attacks.reid_rate_oracle(fresh, x_hat, x_all, source, rng=attack_rng),
        "reid_rate_oracle_multi": float(np.mean(attacks._nearest(x_hat, means) == source)),
        "reid_rate_score": attacks.reid_rate_score(logits_anon, logits_all, source),
        "reid_rate_score_features": attacks.reid_rate_score_features(
            x_hat, logits_anon, means, logits_all, source
        ),
        "reid_rate_inversion": inversion.pop("best"),
    }
    rates["reid_rate_worst"] = max(rates[k] for k in attacks.LINKAGE)
    result = {
        "target_accuracy": target_acc,
        "target_auc": target_auc,
        "anon_accuracy": anon_acc,
        "anon_auc": anon_auc,
        "prediction_agreement": metrics.prediction_agreement(p_orig_rep, p_anon),
        "score_rank_corr": metrics.score_rank_corr(p_orig_rep, p_anon),
        "score_mae": metrics.score_mae(p_orig_rep, p_anon),
        "correlation": metrics.correlation(x, x_hat),
        "correlation_pooled": metrics.correlation_pooled(x, x_hat),
        "reid_random_baseline": attacks.random_baseline(len(x_all)),
        "corr_matrix_mad": metrics.corr_matrix_mad(data.x_train, x_train_hat),
        "tstr_accuracy": metrics.tstr_accuracy(x_train_hat, data.y_train, x_t, y_t, seed=0),
        "tstr_accuracy_real": metrics.tstr_accuracy(data.x_train, data.y_train, x_t, y_t, seed=0),
        "n_anonymized_records": float(len(x)),
    }
    for name, rate in rates.items():
        result.update(attacks.rate_metrics(name, rate, len(x)))
    result.update({f"reid_rate_inversion_{k}": v for k, v in inversion.items()})
    if rows_per_second is not None:
        result["anonymize_rows_per_second"] = rows_per_second
    if extended:
        result.update(strong_attacks(anonymizer, data, predict_proba, x_hat, seed, n_games,
                                     attribute))  # fmt: skip
    return result


def strong_attacks(
    anonymizer: Anonymizer,
    data: EvalData,
    predict_proba,
    x_hat: np.ndarray,
    seed: int | None = 0,
    n_games: int = 10_000,
    attribute: tuple[list[int], int] | None = None,
) -> dict[str, float]:
    """The distinguishing game three ways plus the class-leak bound, distance to closest record
    and attribute inference, on one release `x_hat` of the targets. Every anonymiser call
    draws fresh randomness from `seed`."""
    rng = np.random.default_rng(None if seed is None else seed + 7919)

    def fresh(z: np.ndarray) -> np.ndarray:
        return anonymizer.anonymize(z, seed=int(rng.integers(0, 2**31 - 1)))

    x_all = data.x_all
    classes = predict_proba(x_all).argmax(axis=1)
    out: dict[str, float] = {"dcr_median": attacks.dcr_median(x_hat, x_all)}
    out.update(attacks.ind_advantage(fresh, x_all, n_games, rng).as_metrics("ind_advantage"))
    out.update(
        attacks.ind_advantage_same_class(fresh, x_all, classes, n_games, rng).as_metrics(
            "ind_advantage_same_class"
        )
    )
    out.update(
        attacks.ind_advantage_oracle(fresh, x_all, classes, n_games, rng).as_metrics(
            "ind_advantage_oracle"
        )
    )
    out.update(attacks.class_leak_bound(classes, rng=rng).as_metrics("class_leak_bound"))
    if attribute is not None:
        known, sensitive = attribute
        release = fresh(data.x_targets)  # one release record per target, unlinked
        out.update(
            attacks.attribute_inference_gain(
                release, data.x_targets, data.x_train, known, sensitive
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# The `evaluate` job: AnomiGAN's δ and λe sweeps (the paper's Tables 1 and 2), its ablations and
# every reference behind the same guard, on several splits. MLflow-free: the job passes a
# callback that logs each setting as a nested run.
# --------------------------------------------------------------------------------------------


def _grid(start: float, stop: float, step: float = 0.1) -> tuple[float, ...]:
    return tuple(round(v, 10) for v in np.round(np.arange(start, stop + step / 2, step), 10))


@dataclass
class SweepConfig:
    """What the `evaluate` job measures; `quick_mode()` runs the same code path in minutes."""

    deltas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    lambda_es: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    dp_scales: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    blend_as: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
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
    def quick_mode(cls, **overrides) -> SweepConfig:
        base = dict(
            deltas=(0.3, 1.0),
            lambda_es=(0.5, 1.0),
            retrain_delta=False,
            dp_scales=(0.1, 1.0),
            blend_as=(0.2, 0.8),
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


def table1(
    trained, data: EvalData, predict_proba, repeats: int, noise_scale: float, seed: int = 0
) -> list[dict[str, float | int | str]]:
    """The paper's Table 1: the fixed test data anonymised `repeats` times with the recorded
    variance (x noise_scale) injected into one encoder layer at a time; first row: no noise."""
    x = np.tile(data.x_targets, (repeats, 1))
    y = np.tile(data.y_targets, repeats)
    p_orig = np.tile(predict_proba(data.x_targets), (repeats, 1))
    rows = []
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
    method: str  # anomigan, laplace_dp, class_copula, copula_blend, identity, class_prototype
    anonymizer: str  # the `anonymizer` param: which variant (e.g. anomigan_guard_off)
    sweep: str
    param_name: str
    param: float
    build: Callable[[], Anonymizer]
    extra: dict[str, Any] = field(default_factory=dict)
    train_s: Callable[[], float | None] = lambda: None


def _settings(split: Split, config: SweepConfig, overrides: dict, index: int) -> list[_Setting]:
    """Every setting of one split, in report order; encoders train once, when first built."""
    from anomigan.method.gan import GANConfig, train_anomigan

    data, target = split.data, split.target
    defaults = GANConfig()
    seed = overrides.get("seed", config.seed) + index  # encoder seeds vary with the split
    cache: dict[tuple[float, float, bool], tuple[Any, float]] = {}  # (λe, δ, defaults)

    def trained_at(lambda_e: float, delta: float, defaults: bool = False) -> tuple[Any, float]:
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

    copula: list[ClassCopula] = []

    def cop() -> ClassCopula:
        if not copula:
            copula.append(ClassCopula.fit(data.x_train, target.predict, split.blocks))
        return copula[0]

    bl, bd = defaults.lambda_e, defaults.delta
    out: list[_Setting] = []

    def anomigan(name, anonymizer, sweep, pname, pval, lam, delta, defaults=False, **kw):
        out.append(
            _Setting(
                name,
                "anomigan",
                anonymizer,
                sweep,
                pname,
                pval,
                lambda: AnomiGANAnonymizer(trained_at(lam, delta, defaults)[0], **kw),
                {"inference_delta": kw.get("noise_scale", delta)},
                lambda: trained_at(lam, delta, defaults)[1],
            )
        )

    g = {"predict": guard[0], "max_resample": guard[1]}
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
                     noise_scale=delta, **g)  # fmt: skip
    for lambda_e in config.lambda_es:
        anomigan(f"anomigan-lambda_e-{lambda_e:g}", "anomigan", "lambda_e", "lambda_e", lambda_e,
                 lambda_e, bd, **g)  # fmt: skip
    d = data.x_train.shape[1]
    for scale in config.dp_scales:
        eps = {"epsilon_per_record": LaplaceDP(scale).epsilon_per_record(d)}
        out.append(_Setting(f"dp-lambda-{scale:g}", "laplace_dp", "laplace_dp", "dp", "lambda",
                            scale, lambda s=scale: LaplaceDP(s), eps))  # fmt: skip
        out.append(_Setting(f"dp-guard-lambda-{scale:g}", "laplace_dp", "laplace_dp_guard",
                            "dp_guard", "lambda", scale,
                            lambda s=scale: guarded(LaplaceDP(s)), {}))  # fmt: skip
    out.append(_Setting("class_copula", "class_copula", "class_copula", "reference", "none",
                        0.0, lambda: guarded(cop())))  # fmt: skip
    for a in config.blend_as:
        out.append(_Setting(f"copula_blend-{a:g}", "copula_blend", "copula_blend", "blend",
                            "blend_a", a, lambda a=a: guarded(CopulaBlend(cop(), a))))  # fmt: skip
    out.append(_Setting("identity", "identity", "identity", "reference", "none", 0.0, Identity))
    def prototype() -> Anonymizer:
        return guarded(ClassPrototype.fit(data.x_train, target.predict))

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
    gan_overrides: dict | None = None,
    attribute: tuple[list[int], int] | None = None,
    on_setting=None,
) -> dict:
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
        measured: dict[tuple, dict[str, float]] = {}
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
    settings_out = []
    for st in plan:
        setting = {
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
