"""One source for every default: the MLproject parameters and the CLI options agree with the
dataclasses they feed."""

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from anomigan.cli import build_parser
from anomigan.data import TEST_SIZE
from anomigan.method.gan import GANConfig
from anomigan.method.target import TargetConfig
from anomigan.mlops.tuning import TuneSettings

MLPROJECT = yaml.safe_load((Path(__file__).resolve().parent.parent / "MLproject").read_text())


def _defaults(entry: str) -> dict:
    params = MLPROJECT["entry_points"][entry]["parameters"]
    return {k: v["default"] for k, v in params.items()}


def _same(a, b) -> bool:
    if a in ("", None) or b in ("", None):
        return a in ("", None) and b in ("", None)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


@pytest.mark.parametrize(
    ("entry", "config"),
    [("train", GANConfig()), ("train_target", TargetConfig()), ("tune", TuneSettings())],
)
def test_mlproject_defaults_are_the_dataclass_defaults(entry, config):
    project = _defaults(entry)
    names = {f.name for f in fields(config)} & set(project)
    assert names, entry
    for name in names:
        if name == "seed" and getattr(config, name) is None:
            continue  # GANConfig's None seed: `train` passes 0 for a reproducible run
        assert _same(project[name], getattr(config, name)), (entry, name)


def test_cli_tune_defaults_are_the_dataclass_defaults():
    tune = build_parser().parse_args(["tune"])
    settings = TuneSettings()
    for f in fields(TuneSettings):
        if hasattr(tune, f.name) and f.name not in ("storage", "study_name", "label"):
            assert _same(getattr(tune, f.name), getattr(settings, f.name)), f.name
    for entry in ("train", "tune", "evaluate", "train_target"):
        assert _same(_defaults(entry).get("test_size", TEST_SIZE), TEST_SIZE)
