"""The `anomigan` command; its sub-commands mirror the MLproject entry points."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

# Deliberately deferred: each sub-command imports the layer it runs when it runs, so `--help`
# and argument errors answer at once, before TensorFlow, MLflow and Optuna load (and after
# TF_CPP_MIN_LOG_LEVEL below is set).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
#: sub-commands whose time goes to small training steps (see `anomigan.method.runtime`)
TRAINING_COMMANDS = ("train_target", "train-target", "train", "tune", "evaluate")

from anomigan.cli.options import (  # noqa: E402 - after the environment above
    _bool,
    _data_args,
    _gan_args,
    _int,
    _tune_args,
)


def _cmd_train_target(a: argparse.Namespace) -> dict:
    from anomigan.mlops.jobs import train_target_job

    return train_target_job(
        a.dataset,
        a.label or None,
        a.split_seed,
        a.test_size,
        epochs=a.epochs,
        hidden=a.hidden,
        seed=a.seed,
    )


def _cmd_train(a: argparse.Namespace) -> dict:
    from dataclasses import fields

    from anomigan.method.gan import GANConfig
    from anomigan.mlops.jobs import train_job

    return train_job(
        a.dataset,
        a.label or None,
        a.split_seed,
        a.test_size,
        n_records=a.n_records,
        max_resample=a.max_resample,
        **{f.name: getattr(a, f.name) for f in fields(GANConfig)},
    )


def _cmd_tune(a: argparse.Namespace) -> dict:
    from anomigan.mlops.jobs import tune_job

    return tune_job(
        a.dataset,
        a.label or None,
        a.split_seed,
        a.test_size,
        n_trials=a.n_trials,
        n_workers=a.n_workers,
        storage=a.storage or None,
        study_name=a.study_name or None,
        privacy_objective=a.privacy_objective,
        min_agreement=a.min_agreement,
        max_corr_mad=a.max_corr_mad,
        min_steps=a.min_steps,
        max_steps=a.max_steps,
        n_records=a.n_records,
        prune_floor=a.prune_floor,
        prune_after=a.prune_after,
        seed=a.seed,
        promote=not a.no_promote,
        max_resample=a.max_resample,
    )


def _cmd_promote(a: argparse.Namespace) -> dict:
    from anomigan.mlops.tuning import promote

    return promote(a.model, a.version)


def _cmd_evaluate(a: argparse.Namespace) -> dict:
    from anomigan.mlops.jobs import evaluate_job

    return evaluate_job(
        a.dataset,
        a.label or None,
        a.split_seed,
        a.test_size,
        quick=a.quick,
        known_columns=[c.strip() for c in a.known_columns.split(",")] if a.known_columns else None,
        sensitive_column=a.sensitive_column or None,
        steps=a.steps or None,  # 0 = the mode's default (MLproject passes every param)
        n_records=a.n_records or None,
        n_games=a.n_games or None,
        table1_repeats=a.repeats or None,
        retrain_delta=a.retrain_delta,
        n_seeds=a.n_seeds or None,
        seed=a.seed,
    )


def _cmd_report(a: argparse.Namespace) -> dict:
    from anomigan.mlops.jobs import report_job

    datasets = [d.strip() for d in a.dataset.split(",")] if a.dataset else None
    run_ids = [r.strip() for r in a.run_id.split(",")] if a.run_id else None
    return report_job(a.output, datasets, run_ids)


def _cmd_anonymize(a: argparse.Namespace) -> dict:
    if a.engine == "spark":
        from anomigan.mlops.spark import anonymize_spark

        return anonymize_spark(
            a.model,
            a.input,
            a.output,
            seed=a.seed,
            allow_missing=a.allow_missing,
            max_resample=a.max_resample,
            batch_size=a.chunk_size,
            master=a.spark_master,
        )
    from anomigan.mlops.batch import anonymize_csv

    return anonymize_csv(
        a.model,
        a.input,
        a.output,
        a.chunk_size,
        seed=a.seed,
        allow_missing=a.allow_missing,
        max_resample=a.max_resample,
        workers=a.workers,
    )


def _cmd_models(a: argparse.Namespace) -> dict:
    from anomigan.mlops import tracking

    models = tracking.registered_models()
    if not models:
        print(f"no anomigan models registered in {tracking.tracking_uri()}")
    for name, latest, champion in models:
        print(f"{name}: latest version {latest}, champion {champion or '-'}")
        if champion:
            print(f"    models:/{name}@champion")
    return {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomigan",
        description="Anonymise tabular medical records with AnomiGAN, tracked in MLflow.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db here)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train_target",
        aliases=["train-target"],
        help="train and register the target classifier D2",
        description="Train the target classifier, log it and register anomigan-target-<dataset>.",
    )
    _data_args(p)
    p.add_argument("--epochs", type=_int, default=None, help="training epochs (default 60)")
    p.add_argument("--hidden", type=_int, default=None, help="hidden units (default 32)")
    p.add_argument("--seed", type=_int, default=None, help="training seed (default 0)")
    p.set_defaults(func=_cmd_train_target)

    p = sub.add_parser(
        "train",
        help="train AnomiGAN against the target and register anomigan-encoder-<dataset>",
        description="Train the AnomiGAN encoder (the target is trained first if missing), "
        "evaluate it on the test split and register a new encoder version.",
    )
    _data_args(p)
    _gan_args(p)
    p.add_argument(
        "--n-records", type=_int, default=1000, help="anonymised test records to evaluate on"
    )
    p.add_argument(
        "--max-resample",
        type=_int,
        default=10,
        help="prediction guard: re-draw a record whose class the target would change, up to "
        "this many times (0 = off)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "tune",
        help="tune AnomiGAN with Optuna and promote the best encoder to champion",
        description="Run or resume a multi-objective Optuna study (agreement up, privacy "
        "figure and corr_matrix_mad down), one nested MLflow run per trial; the Pareto trial "
        "meeting the bars with the lowest privacy figure becomes the encoder's champion.",
    )
    _data_args(p)
    _tune_args(p)
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser(
        "promote",
        help="move the champion alias of a registered model to a version",
        description="Give version N of a registered model the alias `champion`.",
    )
    p.add_argument("--model", required=True, help="e.g. anomigan-encoder-breast")
    p.add_argument("--version", required=True, type=_int, help="the version to promote")
    p.set_defaults(func=_cmd_promote)

    p = sub.add_parser(
        "models",
        help="list the registered anomigan models, their latest version and champion",
        description="List registered models named anomigan-* in the tracking store.",
    )
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser(
        "evaluate",
        help="privacy-utility evaluation: AnomiGAN sweeps against DP and reference anonymisers",
        description="Sweep δ and λe (retraining per λe), the Laplace mechanism's λ, identity and "
        "the class prototype on the same split; one nested MLflow run per setting, Tables 1-2, "
        "figures and report.md as artifacts of the parent run.",
    )
    _data_args(p)
    p.add_argument(
        "--quick",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="few settings, steps and repeats (the tests' mode)",
    )
    p.add_argument(
        "--steps", type=_int, default=None, help="GAN training steps per encoder (0: default)"
    )
    p.add_argument(
        "--n-records", type=_int, default=None, help="anonymised test records per setting (1000)"
    )
    p.add_argument("--n-games", type=_int, default=None, help="games per distinguishing game")
    p.add_argument("--repeats", type=_int, default=None, help="Table 1 repeats of the test data")
    p.add_argument(
        "--n-seeds",
        type=_int,
        default=None,
        help="splits (and encoder seeds) every figure is averaged over (full 3, quick 2; 0: "
        "the mode's default)",
    )
    p.add_argument(
        "--retrain-delta",
        type=_bool,
        nargs="?",
        const=True,
        default=None,
        help="retrain the encoder for every δ (full mode's default; quick mode varies the "
        "inference noise only)",
    )
    p.add_argument("--seed", type=_int, default=None, help="seed of training and attacks (0)")
    p.add_argument(
        "--known-columns", default="", help="attribute inference: comma-separated known columns"
    )
    p.add_argument("--sensitive-column", default="", help="attribute inference: target column")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "report",
        help="write report.md from the latest evaluate run of each data set",
        description="Write report.md, figures/ and tables/ to a folder from finished evaluate "
        "runs in the tracking store.",
    )
    p.add_argument("--output", required=True, help="folder to write report.md into")
    p.add_argument("--dataset", default="", help="data sets to include, comma-separated (all)")
    p.add_argument("--run-id", default="", help="evaluate run ids, comma-separated (latest)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "anonymize",
        aliases=["anonymise"],
        help="anonymise a CSV file with a registered encoder (streamed, atomic output)",
        description="Stream a CSV of raw records through an encoder in chunks, validating every "
        "chunk, and write the anonymised records atomically (a failed run writes nothing).",
    )
    p.add_argument("--model", required=True, help="e.g. models:/anomigan-encoder-breast@champion")
    p.add_argument(
        "--input", required=True, help="CSV of raw records with the model's columns (or Parquet)"
    )
    p.add_argument(
        "--output", required=True, help="CSV (Parquet folder) to write, replaced only on success"
    )
    p.add_argument("--chunk-size", type=_int, default=50_000, help="rows per chunk (50000)")
    p.add_argument(
        "--seed", type=_int, default=None, help="reproducible output; keep it secret (default none)"
    )
    p.add_argument(
        "--allow-missing", action="store_true", help="impute empty cells instead of refusing them"
    )
    p.add_argument(
        "--max-resample",
        type=_int,
        default=None,
        help="prediction guard re-draws (default: the model's, 10 as trained; 0 off: faster, "
        "but some records then change the target's prediction)",
    )
    p.add_argument(
        "--workers",
        type=_int,
        default=2,
        help="threads anonymising chunks concurrently (2); the output does not depend on it",
    )
    p.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="local: this process, CSV out; spark: a Spark job (CSV or Parquet in, a Parquet "
        "folder out; --chunk-size is its Arrow batch; needs the spark extra)",
    )
    p.add_argument(
        "--spark-master",
        default=None,
        help="Spark master for --engine spark (default: the active session or spark-submit's, "
        "else local[2])",
    )
    p.set_defaults(func=_cmd_anonymize)
    return parser


def _print_result(result: object) -> None:
    if isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command; bad input exits 2 with a message naming the problem, never a value."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from anomigan.data import DataError
    from anomigan.data.codec import SchemaError
    from anomigan.mlops import tracking

    if args.command in TRAINING_COMMANDS:
        from anomigan.method.runtime import use_step_threads

        use_step_threads()
    tracking.configure(args.tracking_uri)
    func: Callable[[argparse.Namespace], object] = args.func
    try:
        _print_result(func(args))
    except (DataError, SchemaError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if args.debug:
            raise
        # The message of an unexpected error may quote a value from the data: withhold it.
        print(
            f"error: {type(exc).__name__} while running {args.command}; rerun with --debug "
            "for details (they may include data values)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
