"""Privacy-utility evaluation of any anonymiser on a fixed split, the paper's protocol.

The test split is anonymised repeatedly until at least `n_records` anonymised records exist
(the paper's "1000 cases"); utility figures compare the target's answers on originals and
releases, privacy figures come from attacks that try to link releases back to patients.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from anomigan import attacks, metrics
from anomigan.anonymizers import Anonymizer


@dataclass
class EvalData:
    """Model-space records of a split with integer labels; `x_all` is the whole data set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def x_all(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_test])

    @property
    def test_index(self) -> np.ndarray:
        """Positions of the test records inside `x_all`."""
        return len(self.x_train) + np.arange(len(self.x_test))


def throughput(anonymizer: Anonymizer, x: np.ndarray, n_rows: int = 20_000) -> float:
    """Rows per second when anonymising `n_rows` records in one call (after a warm-up call)."""
    big = np.tile(x, (math.ceil(n_rows / len(x)), 1))[:n_rows]
    anonymizer.anonymize(big[:256], seed=0)
    start = time.perf_counter()
    anonymizer.anonymize(big, seed=1)
    return n_rows / max(time.perf_counter() - start, 1e-9)


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
    inversion_aug: int = 4,
) -> dict[str, float]:
    """Every figure the `train` run logs, measured on the same records for every anonymiser.

    `predict_proba` is the frozen target (model-space records -> class probabilities).
    `seed` fixes the anonymiser's randomness and the attacks' so runs compare like for like.
    `extended` adds the strong attacks of `evaluate` runs (distinguishing games, inversion,
    attribute inference given (known model columns, sensitive model column)); they cost
    seconds per setting, so `train` leaves them out. `throughput_rows=0` skips the timing.
    """
    rng = np.random.default_rng(seed)

    def draw() -> int | None:
        return None if seed is None else int(rng.integers(0, 2**31 - 1))

    repeats = max(1, math.ceil(n_records / len(data.x_test)))
    x = np.tile(data.x_test, (repeats, 1))
    y = np.tile(data.y_test, repeats)
    source = np.tile(data.test_index, repeats)

    x_hat = anonymizer.anonymize(x, seed=draw())
    rows_per_second = (
        throughput(anonymizer, data.x_all, throughput_rows) if throughput_rows else None
    )

    p_orig, p_anon = predict_proba(data.x_test), predict_proba(x_hat)
    target_acc, target_auc = metrics.accuracy_auc(data.y_test, p_orig)
    anon_acc, anon_auc = metrics.accuracy_auc(y, p_anon)
    x_train_hat = anonymizer.anonymize(data.x_train, seed=draw())
    x_all = data.x_all
    oracle_seed = draw()
    result = {
        "target_accuracy": target_acc,
        "target_auc": target_auc,
        "anon_accuracy": anon_acc,
        "anon_auc": anon_auc,
        "prediction_agreement": metrics.prediction_agreement(np.tile(p_orig, (repeats, 1)), p_anon),
        "correlation": metrics.correlation(x, x_hat),
        "correlation_pooled": metrics.correlation_pooled(x, x_hat),
        "reid_rate": attacks.reid_rate(x_hat, x_all, source),
        "reid_rate_oracle": attacks.reid_rate_oracle(
            lambda z: anonymizer.anonymize(z, seed=oracle_seed),
            x_hat,
            x_all,
            source,
            rng=np.random.default_rng(oracle_seed),
        ),
        "reid_random_baseline": attacks.random_baseline(len(x_all)),
        "corr_matrix_mad": metrics.corr_matrix_mad(data.x_train, x_train_hat),
        "tstr_accuracy": metrics.tstr_accuracy(
            x_train_hat, data.y_train, data.x_test, data.y_test, seed=0
        ),
        "tstr_accuracy_real": metrics.tstr_accuracy(
            data.x_train, data.y_train, data.x_test, data.y_test, seed=0
        ),
        "n_anonymized_records": float(len(x)),
    }
    if rows_per_second is not None:
        result["anonymize_rows_per_second"] = rows_per_second
    if extended:
        result.update(
            strong_attacks(
                anonymizer,
                data,
                predict_proba,
                x_hat,
                source,
                seed,
                n_games,
                attribute,
                inversion_aug,
            )
        )
    return result


def strong_attacks(
    anonymizer: Anonymizer,
    data: EvalData,
    predict_proba,
    x_hat: np.ndarray,
    source: np.ndarray,
    seed: int | None = 0,
    n_games: int = 10_000,
    attribute: tuple[list[int], int] | None = None,
    inversion_aug: int = 4,
) -> dict[str, float]:
    """The attacks of issue 7 on one release `x_hat` (test records, sources `source`): the
    distinguishing game three ways plus the class-leak bound, distance to closest record, the
    inversion adversary (trained on the training split only, disjoint from the targets) and
    attribute inference. Every anonymiser call draws fresh randomness from `seed`."""
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
    inversion = attacks.reid_rate_inversion(
        fresh,
        x_hat,
        x_all,
        source,
        np.arange(len(data.x_train)),
        attacks.inversion_models(0 if seed is None else seed),
        n_aug=inversion_aug,
    )
    out["reid_rate_inversion"] = inversion.pop("best")
    out.update({f"reid_rate_inversion_{k}": v for k, v in inversion.items()})
    if attribute is not None:
        known, sensitive = attribute
        release = fresh(data.x_test)  # one release record per target, unlinked
        out.update(
            attacks.attribute_inference_gain(release, data.x_test, data.x_train, known, sensitive)
        )
    return out


# --------------------------------------------------------------------------------------------
# The `evaluate` job's sweeps, the paper's Tables 1 and 2. MLflow-free: the job passes a
# callback that logs each setting as a nested run.
# --------------------------------------------------------------------------------------------


def _grid(start: float, stop: float, step: float = 0.1) -> tuple[float, ...]:
    return tuple(round(v, 10) for v in np.round(np.arange(start, stop + step / 2, step), 10))


@dataclass
class SweepConfig:
    """What the `evaluate` job measures; `quick()` runs the same code path in about a minute."""

    deltas: tuple[float, ...] = _grid(0.0, 1.0)
    lambda_es: tuple[float, ...] = _grid(0.0, 1.0)
    dp_scales: tuple[float, ...] = _grid(0.1, 1.0)
    base_lambda_e: float = 0.5  # λe of the δ sweep
    base_delta: float = 0.3  # δ of the λe sweep
    # δ is a training parameter (it weighs the privacy terms), so each δ gets its own encoder;
    # False varies only the inference noise of the base encoder (a cheaper, weaker sweep)
    retrain_delta: bool = True
    # 21 trainings must fit the 20-minute budget on 2 cores; `train`'s default is 4000
    steps: int | None = 2000
    n_records: int = 1000  # anonymised test records per setting (the paper's 1000 cases)
    n_games: int = 10_000  # games per distinguishing game
    table1_repeats: int = 1000  # repeats of the fixed test data per Table 1 row
    table1_noise_scale: float = 1.0  # Table 1 adds each layer's recorded variance, scaled
    inversion_aug: int = 4  # anonymisations per known record for the inversion adversary
    max_resample: int = 10  # AnomiGAN's prediction guard as `train` serves it (0: off)
    seed: int = 0
    quick: bool = False

    @classmethod
    def quick_mode(cls, **overrides) -> SweepConfig:
        base = dict(
            deltas=(0.3, 1.0),
            lambda_es=(0.5, 1.0),
            retrain_delta=False,
            dp_scales=(0.1, 1.0),
            steps=50,
            n_records=100,
            n_games=1000,
            table1_repeats=10,
            inversion_aug=1,
            quick=True,
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def params(self) -> dict[str, float | int | str | bool]:
        """Scalars for MLflow (grids as comma-separated text)."""
        out: dict[str, float | int | str | bool] = {}
        for k, v in self.__dict__.items():
            out[f"sweep_{k}"] = ",".join(f"{g:g}" for g in v) if isinstance(v, tuple) else v
        return out


def _json_matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(m)]


def table1(
    trained, data: EvalData, predict_proba, repeats: int, noise_scale: float, seed: int = 0
) -> list[dict[str, float | int | str]]:
    """The paper's Table 1: the fixed test data anonymised `repeats` times with the recorded
    variance (x noise_scale) injected into one encoder layer at a time; first row: no noise."""
    from anomigan.anonymizers import AnomiGANAnonymizer

    x = np.tile(data.x_test, (repeats, 1))
    y = np.tile(data.y_test, repeats)
    p_orig = np.tile(predict_proba(data.x_test), (repeats, 1))
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


def run_sweeps(
    data: EvalData,
    target,
    config: SweepConfig,
    gan_overrides: dict | None = None,
    attribute: tuple[list[int], int] | None = None,
    on_setting=None,
) -> dict:
    """Every setting of the evaluation on the same split and seed; returns a JSON-able dict.

    `target` is a TrainedTarget; `on_setting(setting)` is called after each setting (the job
    logs it as a nested run). AnomiGAN is retrained for each λe (and each δ when
    `retrain_delta`); DP, identity and the class prototype need no training.
    """
    from anomigan.anonymizers import AnomiGANAnonymizer, ClassPrototype, Identity, LaplaceDP
    from anomigan.gan import GANConfig, train_anomigan

    overrides = {k: v for k, v in (gan_overrides or {}).items() if v is not None}
    if config.steps is not None:
        overrides["steps"] = config.steps
    overrides.setdefault("seed", config.seed)
    trained_cache: dict[tuple[float, float], tuple[object, float]] = {}

    def trained_at(lambda_e: float, delta: float) -> tuple[object, float]:
        key = (lambda_e, delta)
        if key not in trained_cache:
            cfg = GANConfig(**{**overrides, "lambda_e": lambda_e, "delta": delta})
            start = time.perf_counter()
            enc = train_anomigan(data.x_train, target.model, cfg)
            trained_cache[key] = (enc, time.perf_counter() - start)
        return trained_cache[key]

    settings: list[dict] = []
    metric_cache: dict[tuple, dict[str, float]] = {}
    d = data.x_train.shape[1]

    def add(name, method, sweep, param_name, param, anonymizer, extra_params, key, train_s=None):
        if key not in metric_cache:
            metric_cache[key] = evaluate(
                anonymizer,
                data,
                target.predict_proba,
                config.n_records,
                seed=config.seed,
                extended=True,
                n_games=config.n_games,
                throughput_rows=0,
                attribute=attribute,
                inversion_aug=config.inversion_aug,
            )
            if train_s is not None:
                metric_cache[key]["train_seconds"] = train_s
        setting = {
            "name": name,
            "method": method,
            "sweep": sweep,
            "param_name": param_name,
            "param": float(param),
            "params": {**anonymizer.params(), **extra_params},
            "metrics": dict(metric_cache[key]),
        }
        settings.append(setting)
        if on_setting is not None:
            on_setting(setting)

    bl, bd = config.base_lambda_e, config.base_delta
    # the prediction guard of the served anonymiser; Table 1 runs without it (the paper's protocol)
    guard = (target.predict, config.max_resample) if config.max_resample > 0 else ()
    base, base_seconds = trained_at(bl, bd)
    for delta in config.deltas:
        if config.retrain_delta:
            enc, secs = trained_at(bl, delta)
            anon = AnomiGANAnonymizer(enc, *guard)
            key = ("anomigan", bl, delta, delta)
        else:
            enc, secs = base, base_seconds
            anon = AnomiGANAnonymizer(enc, *guard, noise_scale=delta)
            key = ("anomigan", bl, bd, delta)
        add(
            f"anomigan-delta-{delta:g}",
            "anomigan",
            "delta",
            "delta",
            delta,
            anon,
            {"inference_delta": delta},
            key,
            secs,
        )
    for lambda_e in config.lambda_es:
        enc, secs = trained_at(lambda_e, bd)
        add(
            f"anomigan-lambda_e-{lambda_e:g}",
            "anomigan",
            "lambda_e",
            "lambda_e",
            lambda_e,
            AnomiGANAnonymizer(enc, *guard),
            {"inference_delta": bd},
            ("anomigan", lambda_e, bd, bd),
            secs,
        )
    for scale in config.dp_scales:
        dp = LaplaceDP(scale)
        add(
            f"dp-lambda-{scale:g}",
            "laplace_dp",
            "dp",
            "lambda",
            scale,
            dp,
            {"epsilon_per_record": dp.epsilon_per_record(d)},
            ("dp", scale),
        )
    add("identity", "identity", "reference", "none", 0.0, Identity(), {}, ("identity",))
    proto = ClassPrototype.fit(data.x_train, target.predict)
    add(
        "class_prototype",
        "class_prototype",
        "reference",
        "none",
        0.0,
        proto,
        {},
        ("class_prototype",),
    )

    base_anon = AnomiGANAnonymizer(base, *guard)
    start = time.perf_counter()
    base_anon.anonymize(data.x_test, seed=config.seed)
    run_seconds = time.perf_counter() - start
    heat = {
        f"anomigan (λe={bl:g}, δ={bd:g})": base_anon.anonymize(data.x_train, seed=config.seed),
        f"laplace_dp (λ={config.dp_scales[0]:g})": LaplaceDP(config.dp_scales[0]).anonymize(
            data.x_train, seed=config.seed
        ),
        "class_prototype": proto.anonymize(data.x_train, seed=config.seed),
    }
    return {
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
        "n_features": d,
        "random_baseline": attacks.random_baseline(len(data.x_all)),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()},
        "gan_config": {k: v for k, v in overrides.items()},
        "settings": settings,
        "table1": table1(
            base,
            data,
            target.predict_proba,
            config.table1_repeats,
            config.table1_noise_scale,
            config.seed,
        ),
        "table2": {
            "train_steps": int(base.config.steps),
            "train_seconds": base_seconds,
            "run_seconds_test_split": run_seconds,
            "anonymize_rows_per_second": throughput(base_anon, data.x_all),
        },
        "corr_original": _json_matrix(metrics._corr_matrix(data.x_train)),
        "corr_anonymized": {k: _json_matrix(metrics._corr_matrix(v)) for k, v in heat.items()},
    }
