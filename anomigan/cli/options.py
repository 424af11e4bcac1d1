"""Argument types and option groups of the `anomigan` command, built from the dataclasses that
hold each default (GANConfig, TuneSettings, the split sizes) so no default is written twice."""

from __future__ import annotations

import argparse


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
    from anomigan.data import TEST_SIZE, VAL_SIZE

    p.add_argument(
        "--split-seed",
        type=_int,
        default=0,
        help="seed of the stratified train/validation/test split",
    )
    p.add_argument(
        "--test-size",
        type=float,
        default=TEST_SIZE,
        help=f"share of rows held out for test ({TEST_SIZE}; a further {VAL_SIZE} of the rows "
        "is the validation split)",
    )


def _bool(text: str) -> bool:
    """true/false, yes/no, 1/0 (MLflow passes params as text, e.g. "1.0")."""
    low = str(text).strip().lower()
    if low in ("1", "1.0", "true", "yes", "y", "on"):
        return True
    if low in ("0", "0.0", "false", "no", "n", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional_float(text: str) -> float | None:
    """A number, or "" for "the default" (MLproject passes every parameter as text)."""
    return None if str(text).strip() == "" else float(text)


def _gan_args(p: argparse.ArgumentParser) -> None:
    """One option per GANConfig field, typed and described by the dataclass (no second copy
    of a default: an option left out keeps the dataclass's)."""
    from dataclasses import fields

    from anomigan.method.gan import CORR_TARGETS, D2_LOSSES, PRIORS, GANConfig

    d = GANConfig()
    choices = {"prior": PRIORS, "d2_loss": D2_LOSSES, "corr_target": CORR_TARGETS}
    for f in fields(GANConfig):
        default = getattr(d, f.name)
        kind = _int if f.name == "seed" or isinstance(default, int) else type(default)
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=kind,
            default=None,
            choices=choices.get(f.name),
            help=f"{f.metadata['help']} (default {default})",
        )


def _tune_args(p: argparse.ArgumentParser) -> None:
    from anomigan.mlops.tuning import TuneSettings

    d = TuneSettings()  # the one place tune's defaults live
    p.add_argument(
        "--n-trials",
        type=_int,
        default=d.n_trials,
        help=f"finished trials the study should hold ({d.n_trials})",
    )
    p.add_argument(
        "--n-workers",
        type=_int,
        default=d.n_workers,
        help=f"local worker processes ({d.n_workers})",
    )
    p.add_argument(
        "--storage",
        default="",
        help="Optuna storage: journal:PATH or a database URL (default: a journal file next "
        "to the tracking store)",
    )
    p.add_argument(
        "--study-name", default="", help="study to create or resume (default tune-<dataset>)"
    )
    p.add_argument(
        "--privacy-objective",
        default=d.privacy_objective,
        help=f"figure of the validation evaluation to minimise (default {d.privacy_objective})",
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        default=d.min_agreement,
        help=f"promotion bar on agreement ({d.min_agreement})",
    )
    p.add_argument(
        "--max-corr-mad",
        type=_optional_float,
        default=d.max_corr_mad,
        help="promotion bar on corr_matrix_mad (default: the guarded Laplace λ 0.1's on the "
        "validation split)",
    )
    p.add_argument(
        "--min-steps", type=_int, default=d.min_steps, help=f"fewest training steps ({d.min_steps})"
    )
    p.add_argument(
        "--max-steps", type=_int, default=d.max_steps, help=f"most training steps ({d.max_steps})"
    )
    p.add_argument(
        "--n-records",
        type=_int,
        default=d.n_records,
        help=f"anonymised validation records per evaluation ({d.n_records})",
    )
    p.add_argument(
        "--prune-floor",
        type=float,
        default=d.prune_floor,
        help="prune a trial whose training agreement is below this at a checkpoint "
        f"({d.prune_floor}; 0 off)",
    )
    p.add_argument(
        "--prune-after",
        type=float,
        default=d.prune_after,
        help=f"share of a trial's steps before pruning may start ({d.prune_after})",
    )
    p.add_argument("--seed", type=_int, default=d.seed, help="seed of the sampler and the trials")
    p.add_argument(
        "--no-promote", action="store_true", help="tune only: move no alias (extra machines)"
    )
    p.add_argument(
        "--max-resample",
        type=_int,
        default=d.max_resample,
        help=f"prediction guard re-draws, as in train ({d.max_resample}; 0 off)",
    )
