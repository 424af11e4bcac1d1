"""The target classifier D2 as a job: trained, logged and registered, or fetched for a split.

`load_or_train_target` is what `train`, `evaluate` and `tune` call: the registry's champion
target, trained first when missing, refused when it was trained on another split.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from mlflow import MlflowClient

from anomigan.data import TEST_SIZE
from anomigan.data.codec import RecordCodec
from anomigan.method.target import LabelVocabulary, TargetConfig, TrainedTarget, train_target
from anomigan.mlops import tracking
from anomigan.mlops.prepare import Prepared, prepare, split_tags
from anomigan.mlops.serving import log_target_model
from anomigan.privacy.plots import confusion_matrix_figure

log = logging.getLogger("anomigan")


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


def load_or_train_target(
    prep: Prepared, label: str | None, **kwargs
) -> tuple[TrainedTarget, RecordCodec, str]:
    """D2 for a data set: the registry's champion, trained and registered first if missing.

    Called inside the caller's run, so a target trained here shows up as its nested run. The
    target must have been trained on the same split, or the encoder's test records could be
    ones the target saw in training: that is checked, not assumed.
    """
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


def train_split_target(prep: Prepared, config: TargetConfig) -> TrainedTarget:
    """A target for one more split of the evaluation, with the registered target's settings."""
    vocab = LabelVocabulary.fit(prep.dataset.labels)
    y = vocab.encode(prep.train.labels)
    return TrainedTarget(train_target(prep.x_train, y, len(vocab.classes), config), vocab, config)
