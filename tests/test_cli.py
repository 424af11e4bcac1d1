"""The `anomigan` command and the MLproject entry points: help, exit codes, bad data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from anomigan.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _all_runs() -> int:
    client = MlflowClient()
    experiments = client.search_experiments()
    return len(client.search_runs([e.experiment_id for e in experiments])) if experiments else 0


def test_every_entry_point_answers_help(cli_env):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "anomigan"), "--help"],
        capture_output=True,
        text=True,
        env=cli_env,
        check=True,
    ).stdout
    for script in sorted((ROOT / "entrypoints").glob("*.py")):
        assert script.stem in out, f"`anomigan --help` does not list {script.stem}"
        result = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, env=cli_env
        )
        assert result.returncode == 0, result.stderr
        assert "--dataset" in result.stdout


def test_mlproject_names_every_entry_point():
    text = (ROOT / "MLproject").read_text()
    for script in (ROOT / "entrypoints").glob("*.py"):
        assert f"  {script.stem}:" in text
        assert f"entrypoints/{script.stem}.py" in text


GOOD = "age,sex,marker,y\n" + "\n".join(
    f"{30 + i},{'f' if i % 2 else 'm'},{1.5 + i / 10:.2f},{'sick' if i % 3 else 'well'}"
    for i in range(40)
)


@pytest.mark.parametrize(
    ("content", "label", "expected"),
    [
        (GOOD, "diagnosis", "diagnosis"),  # missing label column
        (GOOD.replace("well", "sick"), "y", "class"),  # a single class
        ("", "y", "empty"),
        ("age,y\n1,a\n2,b\n3,a\n", "y", "rows"),  # fewer rows than the split needs
        (GOOD.replace("\n35,", "\nSECRET42,"), "y", "age"),
        (
            "age,blank,y\n" + "\n".join(f"{i},,{'a' if i % 2 else 'b'}" for i in range(40)),
            "y",
            "blank",
        ),
    ],
    ids=[
        "missing-label",
        "single-class",
        "empty",
        "too-few-rows",
        "text-in-numeric",
        "all-missing",
    ],
)
def test_bad_csv_exits_2_names_the_problem_and_logs_nothing(
    tmp_path, capsys, content, label, expected
):
    path = tmp_path / "records.csv"
    path.write_text(content)
    before = _all_runs()
    code = main(["train_target", "--dataset", str(path), "--label", label, "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("error: ")
    assert expected in err.lower() or expected in err
    assert "SECRET42" not in err
    assert _all_runs() == before
    assert not MlflowClient().search_registered_models(filter_string="name LIKE '%records%'")


def test_user_csv_with_categories_and_missing_values_trains(tmp_path, capsys):
    rows = []
    for i in range(60):
        sick = i % 3 != 0
        marker = "" if i % 7 == 0 else f"{(3.0 if sick else 1.0) + (i % 5) / 10:.2f}"
        rows.append(f"{30 + i},{'f' if i % 2 else 'm'},{marker},{'sick' if sick else 'well'}")
    path = tmp_path / "clinic.csv"
    path.write_text("age,sex,marker,y\n" + "\n".join(rows) + "\n")
    code = main(["train_target", "--dataset", str(path), "--label", "y", "--epochs", "30"])
    out = capsys.readouterr().out
    assert code == 0
    assert "model_name: anomigan-target-clinic" in out


def test_mlflow_run_train_with_local_env_manager(breast_target, cli_env):
    """The MLproject path users take: `mlflow run . -e train --env-manager local`."""
    env = {k: v for k, v in cli_env.items() if not k.startswith("MLFLOW_EXPERIMENT")}
    before = {
        str(v.version)
        for v in MlflowClient().search_model_versions("name='anomigan-encoder-breast'")
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "run",
            str(ROOT),
            "-e",
            "train",
            "--env-manager",
            "local",
            "-P",
            "dataset=breast",
            "-P",
            "steps=30",
            "--experiment-name",
            "mlflow-run-test",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TensorFlow: one thread per op" in result.stderr  # set before TensorFlow started
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("mlflow-run-test").experiment_id]
    )
    params = runs[0].data.params
    assert params["label_column"] == "diagnosis"  # the user's `label` param was empty
    assert "prediction_agreement" in runs[0].data.metrics
    after = {
        str(v.version)
        for v in MlflowClient().search_model_versions("name='anomigan-encoder-breast'")
    }
    assert len(after - before) == 1


def test_models_lists_registered_models_and_champions(breast_target, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "anomigan-target-breast: latest version" in out
    assert "models:/anomigan-target-breast@champion" in out
