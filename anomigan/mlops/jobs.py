"""The project's jobs: each is one tracked MLflow run over the method modules.

The CLI and the MLproject entry points are thin wrappers over these functions. Every job
validates its data *before* it opens a run, so a data set that fails validation leaves nothing
logged or registered.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from anomigan.data import TEST_SIZE, VAL_SIZE, Dataset, load_dataset, split_dataset
from anomigan.data.codec import RecordCodec
from anomigan.mlops import tracking

log = logging.getLogger("anomigan")


@dataclass
class Prepared:
    """A data set split and encoded the way every job needs it."""

    spec: str  # what the user passed as `dataset`: a name or a CSV path
    dataset: Dataset
    train: Dataset  # what the target and the encoder are trained on
    val: Dataset  # carved from the training split: every choice made from measurements
    test: Dataset  # only reported
    codec: RecordCodec
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    split_seed: int
    test_size: float
    val_size: float

    @property
    def x_all(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_val, self.x_test])

    def eval_data(self, target, codec: RecordCodec):
        """The split in model space, encoded with the target's own codec and label vocabulary
        (the target was fitted on the same split, so the codec is the same fit)."""
        from anomigan.privacy.evaluation import EvalData

        return EvalData(
            codec.encode(self.train.features),
            target.vocabulary.encode(self.train.labels),
            codec.encode(self.test.features),
            target.vocabulary.encode(self.test.labels),
            codec.encode(self.val.features),
            target.vocabulary.encode(self.val.labels),
        )

    def log_inputs(self) -> dict[str, str]:
        """The three splits as MLflow dataset inputs of the active run (metadata only);
        returns their digests."""
        return tracking.log_splits(
            self.dataset.name,
            {"train": self.train, "val": self.val, "test": self.test},
            self.dataset.label,
        )

    def split_params(self) -> dict:
        return {
            "dataset": self.dataset.name,
            "dataset_source": self.dataset.source,
            "label_column": self.dataset.label,
            "n_rows": len(self.dataset.features),
            "n_features": self.dataset.features.shape[1],
            "n_model_features": self.codec.n_outputs,
            "n_train": len(self.train.features),
            "n_val": len(self.val.features),
            "n_test": len(self.test.features),
            "split_seed": self.split_seed,
            "test_size": self.test_size,
            "val_size": self.val_size,
        }


def prepare(
    dataset: str,
    label: str | None,
    split_seed: int = 0,
    test_size: float = TEST_SIZE,
    val_size: float = VAL_SIZE,
) -> Prepared:
    """Load, validate, split (stratified, seeded) into train / validation / test (sizes as
    shares of the whole data set) and fit the codec on the training split only."""
    ds = load_dataset(dataset, label=label or None)
    rest, test = split_dataset(ds, test_size=test_size, seed=split_seed)
    train, val = split_dataset(rest, test_size=val_size / (1.0 - test_size), seed=split_seed)
    codec = RecordCodec().fit(train.features)
    return Prepared(
        spec=dataset,
        dataset=ds,
        train=train,
        val=val,
        test=test,
        codec=codec,
        x_train=codec.encode(train.features),
        x_val=codec.encode(val.features),
        x_test=codec.encode(test.features),
        split_seed=split_seed,
        test_size=test_size,
        val_size=val_size,
    )


def train_target_job(
    dataset: str = "breast",
    label: str | None = None,
    split_seed: int = 0,
    test_size: float = TEST_SIZE,
    register: bool = True,
    **target_overrides,
) -> dict:
    """Train the target classifier D2, log it, and register `anomigan-target-<dataset>`."""
    prep = prepare(dataset, label, split_seed, test_size)  # validate before anything is logged
    from anomigan.method.target import LabelVocabulary, TargetConfig, TrainedTarget, train_target
    from anomigan.mlops.serving import log_target_model
    from anomigan.privacy.plots import confusion_matrix_figure

    config = TargetConfig(**{k: v for k, v in target_overrides.items() if v is not None})
    vocab = LabelVocabulary.fit(prep.dataset.labels)
    y_train, y_test = vocab.encode(prep.train.labels), vocab.encode(prep.test.labels)

    name = tracking.target_model_name(prep.dataset.name)
    with tracking.run(f"train_target-{prep.dataset.name}") as active:
        tracking.log_params(prep.split_params())
        prep.log_inputs()
        tracking.log_params({f"target_{k}": v for k, v in asdict(config).items()})
        start = time.perf_counter()
        model = train_target(prep.x_train, y_train, len(vocab.classes), config)
        target = TrainedTarget(model, vocab, config)
        seconds = time.perf_counter() - start
        test_metrics = target.evaluate(prep.x_test, y_test)
        train_metrics = target.evaluate(prep.x_train, y_train)
        metrics = {
            "test_accuracy": test_metrics["accuracy"],
            "test_auc": test_metrics["auc"],
            "train_accuracy": train_metrics["accuracy"],
            "train_seconds": seconds,
        }
        tracking.log_metrics(metrics)
        fig = confusion_matrix_figure(
            y_test,
            target.predict(prep.x_test),
            vocab.classes,
            f"target on {prep.dataset.name} test",
        )
        tracking.log_figure(fig, "confusion_matrix.png")
        with tempfile.TemporaryDirectory() as tmp:
            prep.codec.save(Path(tmp) / "codec.json")
            tracking.log_dir(tmp, "preprocessing")
        info = log_target_model(target, prep.codec)
        result = {"run_id": active.info.run_id, "model_name": name, **metrics}
        if register:
            version, champion = tracking.register(
                info.model_uri,
                name,
                tags={"run_id": active.info.run_id, **split_tags(prep)},
            )
            result.update(version=version, champion=champion)
    log.info(
        "target %s: accuracy %.3f auc %.3f", name, metrics["test_accuracy"], metrics["test_auc"]
    )
    return result


def split_tags(prep: Prepared) -> dict[str, str]:
    """What identifies a split: a target and an encoder must share it."""
    return {
        "split_seed": str(prep.split_seed),
        "test_size": f"{prep.test_size:g}",
        "val_size": f"{prep.val_size:g}",
    }


def load_or_train_target(prep: Prepared, label: str | None, **kwargs):
    """D2 for a data set: the registry's champion, trained and registered first if missing.

    Called inside the caller's run, so a target trained here shows up as its nested run. The
    target must have been trained on the same split, or the encoder's test records could be
    ones the target saw in training: that is checked, not assumed.
    """
    from mlflow import MlflowClient

    from anomigan.method.target import TrainedTarget

    name = tracking.target_model_name(prep.dataset.name)
    uri = f"models:/{name}@{tracking.CHAMPION}"
    if not tracking.model_exists(uri):
        log.info("no %s yet: training the target classifier first", uri)
        train_target_job(prep.spec, label, prep.split_seed, prep.test_size, **kwargs)
    version = MlflowClient().get_model_version_by_alias(name, tracking.CHAMPION)
    wanted = split_tags(prep)
    trained_on = {k: version.tags.get(k) for k in wanted}
    if trained_on != wanted:

        def show(tags: dict) -> str:
            return ", ".join(f"{k} {v}" for k, v in tags.items())

        raise ValueError(
            f"{uri} was trained on another split ({show(trained_on)}) than this job's "
            f"({show(wanted)}): retrain the target with the same split or use its split"
        )
    folder = tracking.download_model_artifacts(uri, "target")
    return (
        TrainedTarget.load(folder),
        RecordCodec.load(folder / "codec.json"),
        f"models:/{name}/{version.version}",
    )


def train_split_target(prep: Prepared, config):
    """A target for one more split of the evaluation, with the registered target's settings."""
    from anomigan.method.target import LabelVocabulary, TrainedTarget, train_target

    vocab = LabelVocabulary.fit(prep.dataset.labels)
    y = vocab.encode(prep.train.labels)
    return TrainedTarget(train_target(prep.x_train, y, len(vocab.classes), config), vocab, config)


def train_job(
    dataset: str = "breast",
    label: str | None = None,
    split_seed: int = 0,
    test_size: float = TEST_SIZE,
    register: bool = True,
    n_records: int = 1000,
    max_resample: int = 10,
    **gan_overrides,
) -> dict:
    """Train AnomiGAN against the registered target, evaluate it, register the encoder pyfunc.

    `max_resample` is the prediction guard (see `AnomiGANAnonymizer`); 0 turns it off.
    """
    prep = prepare(dataset, label, split_seed, test_size)  # validate before anything is logged
    from anomigan.method.anonymizers import AnomiGANAnonymizer
    from anomigan.method.gan import GANConfig, train_anomigan
    from anomigan.mlops.card import description
    from anomigan.mlops.serving import log_encoder_model
    from anomigan.privacy.evaluation import evaluate
    from anomigan.privacy.plots import loss_curves_figure

    config = GANConfig(**{k: v for k, v in gan_overrides.items() if v is not None})
    name = tracking.encoder_model_name(prep.dataset.name)
    with tracking.run(f"train-{prep.dataset.name}") as active:
        target, codec, target_uri = load_or_train_target(prep, label)
        data = prep.eval_data(target, codec)
        tracking.log_params(prep.split_params())
        digests = prep.log_inputs()
        tracking.log_params(
            {
                **asdict(config),
                "target_model": target_uri,
                "n_records": n_records,
                "max_resample": max_resample,
            }
        )

        def log_losses(step: int, losses: dict[str, float]) -> None:
            tracking.log_metrics({f"loss_{k}": v for k, v in losses.items()}, step=step)

        start = time.perf_counter()
        trained = train_anomigan(data.x_train, target.model, config, callback=log_losses)
        train_seconds = time.perf_counter() - start
        anonymizer = AnomiGANAnonymizer(trained, target.predict, max_resample)
        seed = config.seed if config.seed is not None else 0
        metrics = evaluate(anonymizer, data, target.predict_proba, n_records, seed=seed)
        metrics["train_seconds"] = train_seconds
        tracking.log_metrics(metrics)

        losses = {k: v for k, v in trained.history.items() if k not in ("step", "train_seconds")}
        tracking.log_figure(loss_curves_figure(losses, trained.history["step"]), "losses.png")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "layer_variances.json").write_text(trained.variances.to_json())
            trained.variances.save_npz(Path(tmp) / "layer_variances.npz")
            tracking.log_dir(tmp, "variances")
        info = log_encoder_model(anonymizer, target, codec, data.x_test)
        command = (
            f"anomigan train --dataset {prep.spec} --split-seed {prep.split_seed} "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in asdict(config).items()
                       if k in TRAIN_OPTIONS and v is not None)  # fmt: skip
            + f" --max-resample {max_resample}"
        )
        card = model_card(name, prep, digests, asdict(config), anonymizer, data, target,
                          metrics, seed, n_records, command)  # fmt: skip
        card_uri = tracking.log_text(card, "model_card.md")
        result = {"run_id": active.info.run_id, "model_name": name, **metrics}
        if register:
            version, champion = tracking.register(
                info.model_uri,
                name,
                tags={
                    "run_id": active.info.run_id,
                    **split_tags(prep),
                    "target_model": target_uri,
                },
            )
            tracking.describe_version(name, version, description(card, card_uri))
            result.update(version=version, champion=champion)
    log.info(
        "encoder %s: agreement %.3f reid_worst %.3f reid_oracle %.3f",
        name,
        metrics["prediction_agreement"],
        metrics["reid_rate_worst"],
        metrics["reid_rate_oracle"],
    )
    return result


#: GANConfig fields the `train` command takes as options (the card's reproduce command)
TRAIN_OPTIONS = ("lambda_e", "lambda_d", "delta", "steps", "batch_size", "lr", "seed")


def model_card(
    name: str,
    prep: Prepared,
    digests: dict[str, str],
    params: dict,
    anonymizer,
    data,
    target,
    figures: dict[str, float],
    seed: int,
    n_records: int,
    command: str,
) -> str:
    """The encoder's model card: its test figures next to the class copula's and the Laplace
    mechanism's (λ 0.1) behind the same guard, on the same targets and seed."""
    import numpy as np

    from anomigan.method.anonymizers import AnomiGANAnonymizer, ClassCopula, Guarded, LaplaceDP
    from anomigan.mlops.card import encoder_card
    from anomigan.privacy.evaluation import evaluate

    guard = (target.predict, anonymizer.max_resample)
    references = {
        "class_copula + guard": Guarded(
            ClassCopula.fit(data.x_train, target.predict, prep.codec.model_blocks()), *guard
        ),
        "laplace λ 0.1 + guard": Guarded(LaplaceDP(0.1), *guard),
    }
    measured = {
        k: evaluate(a, data, target.predict_proba, n_records, seed=seed, throughput_rows=0)
        for k, a in references.items()
    }
    x = np.tile(data.x_targets, (max(1, -(-n_records // len(data.x_targets))), 1))
    first = AnomiGANAnonymizer(
        anonymizer.trained,
        noise_scale=anonymizer.noise_scale,
        n_noisy_layers=anonymizer.n_noisy_layers,
    ).anonymize(x, seed=seed)
    redraw = float(np.mean(target.predict(first) != target.predict(x)))
    tracking.log_metrics({"guard_redraw_rate": redraw})
    return encoder_card(name, prep.dataset.name, split_tags(prep), digests, params, figures,
                        measured, redraw, command)  # fmt: skip


def tune_job(
    dataset: str = "breast",
    label: str | None = None,
    split_seed: int = 0,
    test_size: float = TEST_SIZE,
    **tune_options,
) -> dict:
    """Tune AnomiGAN with Optuna (one parent run, one nested run per trial) and apply the
    promotion policy; see `anomigan.mlops.tuning`. Options left None keep their defaults."""
    from anomigan.mlops.tuning import settings_from, tune

    return tune(
        settings_from(
            dataset=dataset,
            label=label or None,
            split_seed=split_seed,
            test_size=test_size,
            **tune_options,
        )
    )


# default attribute-inference columns per data set: (known raw columns, sensitive raw column)
ATTRIBUTE_COLUMNS = {
    "breast": (["mean radius", "mean texture", "mean smoothness"], "worst area"),
    "ckd": (["age", "bp", "htn"], "hemo"),
}


def attribute_columns(
    codec: RecordCodec, dataset: str, known: list[str] | None, sensitive: str | None
) -> tuple[list[int], int, list[str], str]:
    """Model-space columns of the attribute-inference adversary's known features and of the
    sensitive one (a numeric or binary column); defaults per data set, else the first three
    raw columns and the last single-width column."""
    names = codec.model_space_names()
    raw = codec.columns
    default_known, default_sensitive = ATTRIBUTE_COLUMNS.get(dataset, (raw[:3], None))
    known = list(known or default_known)
    if sensitive is None:
        sensitive = default_sensitive or next(
            (c for c in reversed(raw) if c in names and c not in known), None
        )
    for col in [*known, sensitive]:
        if col not in raw:
            raise ValueError(f"attribute-inference column {col!r} is not a column of the data")
    if sensitive not in names:
        raise ValueError(f"sensitive column {sensitive!r} must be numeric or binary")
    known_idx = [i for i, n in enumerate(names) if n in known or n.split("=")[0] in known]
    return known_idx, names.index(sensitive), known, sensitive


def evaluate_job(
    dataset: str = "breast",
    label: str | None = None,
    split_seed: int = 0,
    test_size: float = TEST_SIZE,
    quick: bool = False,
    known_columns: list[str] | None = None,
    sensitive_column: str | None = None,
    **sweep_overrides,
) -> dict:
    """The privacy-utility evaluation on `n_seeds` splits: one parent run, a nested run per
    setting (AnomiGAN's defaults, ablations, δ and λe sweeps; the Laplace mechanism with and
    without the guard; the class copula, copula blends, identity and class prototype), each
    with its figures as means over the splits; Tables 1-2, figures and report.md as artifacts
    of the parent. The targets are the test split: choices come from `tune` on validation."""
    prep = prepare(dataset, label, split_seed, test_size)  # validate before anything is logged
    import json

    from anomigan.privacy.evaluation import Split, SweepConfig, run_sweeps
    from anomigan.privacy.report import write_report

    overrides = {k: v for k, v in sweep_overrides.items() if v is not None}
    config = SweepConfig.quick_mode(**overrides) if quick else SweepConfig(**overrides)
    if config.n_seeds < 1:
        raise ValueError("n_seeds must be >= 1")
    preps = [prep] + [
        prepare(dataset, label, split_seed + i, test_size) for i in range(1, config.n_seeds)
    ]
    known_idx, sensitive_idx, known, sensitive = attribute_columns(
        prep.codec, prep.dataset.name, known_columns, sensitive_column
    )
    with tracking.run(
        f"evaluate-{prep.dataset.name}",
        tags={"anomigan_job": "evaluate", "anomigan_dataset": prep.dataset.name},
    ) as active:
        target, codec, target_uri = load_or_train_target(prep, label)
        splits = [Split(prep.split_seed, prep.eval_data(target, codec), target,
                        codec.model_blocks())]  # fmt: skip
        for other in preps[1:]:  # the other splits' targets: trained here, not registered
            t = train_split_target(other, target.config)
            splits.append(Split(other.split_seed, other.eval_data(t, other.codec), t,
                                other.codec.model_blocks()))  # fmt: skip
        tracking.log_params(prep.split_params())
        prep.log_inputs()
        tracking.log_params(
            {
                **config.params(),
                "split_seeds": ",".join(str(p.split_seed) for p in preps),
                "target_model": target_uri,
                "attribute_known": ",".join(known),
                "attribute_sensitive": sensitive,
            }
        )

        def log_setting(setting: dict) -> None:
            with tracking.run(
                setting["name"],
                tags={
                    "anomigan_job": "evaluate_setting",
                    "anomigan_method": setting["method"],
                    "anomigan_sweep": setting["sweep"],
                    "anomigan_dataset": prep.dataset.name,
                },
            ):
                tracking.log_params(
                    {
                        "method": setting["method"],
                        "sweep": setting["sweep"],
                        "param_name": setting["param_name"],
                        "param": setting["param"],
                        **setting["params"],
                    }
                )
                tracking.log_metrics(setting["metrics"])
                prep.log_inputs()
            log.info("evaluated %s", setting["name"])

        start = time.perf_counter()
        results = run_sweeps(splits, config, None, (known_idx, sensitive_idx), log_setting)
        results.update(dataset=prep.dataset.name, run_id=active.info.run_id)
        evaluate_seconds = time.perf_counter() - start
        t2 = results["table2"]
        tracking.log_metrics(
            {
                "evaluate_seconds": evaluate_seconds,
                "n_settings": len(results["settings"]),
                "train_seconds": t2["train_seconds"],
                "run_seconds_test_split": t2["run_seconds_test_split"],
                "anonymize_rows_per_second": t2["anonymize_rows_per_second"],
                "random_baseline": results["random_baseline"],
                "class_leak_bound": results["settings"][0]["metrics"]["class_leak_bound"],
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "results.json").write_text(json.dumps(results, indent=1))
            tracking.log_dir(tmp, "evaluation")
        with tempfile.TemporaryDirectory() as tmp:
            write_report([results], tmp)
            tracking.log_dir(tmp, "report")
    return {
        "run_id": active.info.run_id,
        "n_settings": len(results["settings"]),
        "evaluate_seconds": evaluate_seconds,
    }


def report_job(output: str, datasets: list[str] | None = None, run_ids: list[str] | None = None):
    """Write report.md (+ figures/, tables/) to `output` from the latest finished `evaluate`
    run of each data set (or the given runs). Built in a temporary folder first, so a failure
    leaves `output` untouched."""
    import json
    import shutil

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from anomigan.privacy.report import write_report

    client = MlflowClient()
    if not run_ids:
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            filter_string="tags.anomigan_job = 'evaluate' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
        )
        latest: dict[str, str] = {}
        for r in runs:
            ds = r.data.tags.get("anomigan_dataset", "")
            if (not datasets or ds in datasets) and ds not in latest:
                latest[ds] = r.info.run_id
        run_ids = list(latest.values())
        if not run_ids:
            wanted = f" for {', '.join(datasets)}" if datasets else ""
            raise ValueError(f"no finished evaluate run{wanted}: run `anomigan evaluate` first")
    results = []
    for run_id in run_ids:
        try:
            folder = tracking.download_run_artifacts(run_id, "evaluation")
            results.append(json.loads((Path(folder) / "results.json").read_text()))
        except (MlflowException, OSError) as exc:
            raise ValueError(f"run {run_id} has no evaluation results to report") from exc
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        path = write_report(results, tmp)
        shutil.copytree(tmp, out, dirs_exist_ok=True)
    return {"report": str(out / path.name), "runs": ",".join(run_ids)}
