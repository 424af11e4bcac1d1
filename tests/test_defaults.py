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


def test_train_reaches_every_gan_config_field():
    """A tuned champion can be trained again from its params: every GANConfig field is a
    `train` option (CLI and MLproject), and an option left out keeps the dataclass default."""
    names = {f.name for f in fields(GANConfig)}
    assert names <= set(_defaults("train"))
    command = MLPROJECT["entry_points"]["train"]["command"]
    for name in names:
        assert f"--{name.replace('_', '-')} {{{name}}}" in command, name
    args = build_parser().parse_args(["train", "--w-corr", "2", "--prior", "uniform"])
    assert all(hasattr(args, n) for n in names)
    given = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    assert given == {"w_corr": 2.0, "prior": "uniform"}
    assert GANConfig(**given) == GANConfig(w_corr=2.0, prior="uniform")


def test_gan_config_rejects_unknown_fields_and_values():
    with pytest.raises(ValueError, match="unknown GANConfig fields: bogus"):
        GANConfig.from_dict({"delta": 0.3, "bogus": 1})
    with pytest.raises(ValueError, match="prior must be one of"):
        GANConfig(prior="gaussian")
    with pytest.raises(ValueError, match="corr_target must be one of"):
        GANConfig(corr_target="x")
    with pytest.raises(ValueError, match="score_draws must be >= 1"):
        GANConfig(score_draws=0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--d2-loss", "mse"])
