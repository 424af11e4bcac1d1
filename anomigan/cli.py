"""The `anomigan` command; its sub-commands mirror the MLproject entry points."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _int(text: str) -> int:
    """An integer that also accepts MLflow's float-typed params such as "3.0"."""
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", default="breast", help="breast, ckd, or a path to a CSV file (default breast)"
    )
    p.add_argument("--label", default="", help="label column of a CSV data set")
    p.add_argument("--split-seed", type=_int, default=0, help="seed of the stratified 90/10 split")
    p.add_argument("--test-size", type=float, default=0.1, help="share of rows held out for test")


def _cmd_train_target(a: argparse.Namespace) -> dict:
    from anomigan.jobs import train_target_job

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
    from anomigan.jobs import train_job

    return train_job(
        a.dataset,
        a.label or None,
        a.split_seed,
        a.test_size,
        n_records=a.n_records,
        lambda_e=a.lambda_e,
        lambda_d=a.lambda_d,
        delta=a.delta,
        steps=a.steps,
        batch_size=a.batch_size,
        lr=a.lr,
        seed=a.seed,
    )


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
    p.add_argument("--lambda-e", type=float, default=None, help="closeness weight λe (0.5)")
    p.add_argument("--lambda-d", type=float, default=None, help="adversarial weight λd (0.5)")
    p.add_argument("--delta", type=float, default=None, help="privacy level δ in [0, 1] (0.3)")
    p.add_argument("--steps", type=_int, default=None, help="training steps")
    p.add_argument("--batch-size", type=_int, default=None, help="batch size (10, the paper's)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (1e-3)")
    p.add_argument("--seed", type=_int, default=None, help="seed for training and inference")
    p.add_argument(
        "--n-records", type=_int, default=1000, help="anonymised test records to evaluate on"
    )
    p.set_defaults(func=_cmd_train)
    return parser


def _print_result(result: object) -> None:
    if isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command; bad input exits 2 with a message naming the problem, never a value."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from anomigan import tracking
    from anomigan.codec import SchemaError
    from anomigan.data import DataError

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
