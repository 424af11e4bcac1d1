"""The project's jobs: each is one tracked MLflow run over the method modules.

The CLI and the MLproject entry points are thin wrappers over these functions. Every job
validates its data *before* it opens a run, so a data set that fails validation leaves nothing
logged or registered.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from anomigan.data import TEST_SIZE
from anomigan.data.codec import RecordCodec
from anomigan.method.anonymizers import AnomiGANAnonymizer
from anomigan.method.gan import GANConfig, train_anomigan
from anomigan.mlops import tracking
from anomigan.mlops.card import description, model_card
from anomigan.mlops.prepare import prepare, split_tags
from anomigan.mlops.serving import log_encoder_model
from anomigan.mlops.targets import load_or_train_target, train_split_target, train_target_job
from anomigan.mlops.tuning import settings_from, tune
from anomigan.privacy.evaluation import SettingResult, evaluate
from anomigan.privacy.plots import loss_curves_figure
from anomigan.privacy.report import write_report
from anomigan.privacy.sweeps import Split, SweepConfig, run_sweeps

# the jobs the CLI and entry points run, and the two steps every job starts with
__all__ = [
    "evaluate_job",
    "load_or_train_target",
    "prepare",
    "report_job",
    "train_job",
    "train_target_job",
    "tune_job",
]

log = logging.getLogger("anomigan")


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
        trained = train_anomigan(
            data.x_train, target.model, config, callback=log_losses, blocks=data.blocks
        )
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
            f"anomigan train --dataset {shlex.quote(prep.spec)} --split-seed {prep.split_seed} "
            + (f"--label {shlex.quote(label)} " if label else "")
            + " ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in asdict(config).items()
                if v is not None and k != "log_every"
            )
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


def tune_job(
    dataset: str = "breast",
    label: str | None = None,
    split_seed: int = 0,
    test_size: float = TEST_SIZE,
    **tune_options,
) -> dict:
    """Tune AnomiGAN with Optuna (one parent run, one nested run per trial) and apply the
    promotion policy; see `anomigan.mlops.tuning`. Options left None keep their defaults."""
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

        def log_setting(setting: SettingResult) -> None:
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
