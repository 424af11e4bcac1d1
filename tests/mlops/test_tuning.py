"""Tuning with real Optuna and Keras: nested runs, the Pareto artifacts, the promotion policy,
two workers on one study, and a SIGKILLed tune resumed without losing or redoing trials.

Trials train 30-40 steps on breast, so their figures are poor; the tests check the plumbing and
the policy, never how good a tuned encoder is (that is bench/ and the tuning note's job).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from support import assert_trials_land_once, find_leaked_rows

from anomigan.cli import main
from anomigan.data import load_dataset
from anomigan.mlops import tracking
from anomigan.mlops.prepare import prepare
from anomigan.mlops.targets import load_or_train_target
from anomigan.mlops.tuning import CRASH_POINTS, KILL_AT_ENV, open_storage, settings_from, tune
from anomigan.mlops.tuning.results import reference_key, study_reference_rows
from anomigan.mlops.tuning.study import open_study

FAST = {"min_steps": 30, "max_steps": 40, "n_records": 60, "prune_floor": 0.0, "seed": 0}
ENCODER = "anomigan-encoder-breast"


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def _trial_runs(parent_run_id: str) -> dict[int, object]:
    runs = tracking.child_runs(parent_run_id)
    numbers = [int(r.data.tags["optuna_trial_number"]) for r in runs]
    assert len(numbers) == len(set(numbers)), "a trial was logged twice"
    return dict(zip(numbers, runs, strict=True))


@pytest.fixture(scope="module")
def tiny(breast_target, tmp_path_factory) -> tuple[dict, str]:
    """A 3-trial study with a permissive bar, so its best Pareto trial is promoted."""
    storage = f"journal:{tmp_path_factory.mktemp('optuna') / 'tiny.journal'}"
    return tune(_tiny_settings(storage)), storage


def _tiny_settings(storage: str, **changes):
    """The `tiny` study's settings, so a test can resume it with the same ones."""
    return settings_from(
        dataset="breast",
        n_trials=3,
        storage=storage,
        study_name="tiny",
        min_agreement=0.0,
        max_corr_mad=2.0,
        **{**FAST, **changes},
    )


def test_tiny_study_nests_trials_logs_the_front_and_promotes(tiny):
    result, storage = tiny
    client = MlflowClient()
    parent = client.get_run(result["run_id"])
    assert parent.data.tags["optuna_study"] == "tiny"
    assert parent.data.tags["promotion"] == "promoted"
    assert result["trials_run"] == 3 and result["trials_finished"] == 3

    study = _study(storage, "tiny")
    runs = _trial_runs(result["run_id"])
    assert sorted(runs) == [t.number for t in study.trials] == [0, 1, 2]
    for t in study.trials:
        run = runs[t.number]
        assert t.state == TrialState.COMPLETE
        assert t.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.data.tags["optuna_study"] == "tiny"
        assert run.data.tags["optuna_state"] == "COMPLETE"
        assert float(run.data.params["lambda_e"]) == pytest.approx(t.params["lambda_e"])
        assert run.data.metrics["prediction_agreement"] == pytest.approx(t.values[0])
        assert run.data.metrics["reid_rate_worst"] == pytest.approx(t.values[1])
        assert run.data.tags["eval_split"] == "validation"
        assert t.user_attrs["checkpoint_agreement"]  # intermediate results were recorded
    assert study.trials[0].user_attrs.get("baseline")  # train's defaults are trial 0

    arts = {a.path for a in client.list_artifacts(result["run_id"], "pareto")}
    assert arts == {
        "pareto/pareto.csv",
        "pareto/trials.csv",
        "pareto/references.csv",
        "pareto/pareto_front.png",
    }
    folder = Path(
        tracking.download_run_artifacts(result["run_id"], "pareto"),
    )
    front = pd.read_csv(folder / "pareto.csv")
    assert sorted(front["trial_number"]) == sorted(t.number for t in study.best_trials)
    assert result["pareto_trials"] == ",".join(map(str, front["trial_number"]))
    assert len(pd.read_csv(folder / "trials.csv")) == 3
    refs = pd.read_csv(folder / "references.csv")  # measured like a trial, on validation
    assert list(refs["reference"]) == ["class_copula", "copula_blend_0.2", "copula_blend_0.4",
                                       "score_copula_4", "score_bin_copula_2",
                                       "laplace_0.1_guard"]  # fmt: skip
    assert (refs["prediction_agreement"] >= 0.97).all()  # the same guard as the trials
    assert parent.data.metrics["ref_class_copula_reid_rate_worst"] == refs["reid_rate_worst"][0]

    # the policy: every Pareto trial meets the permissive bar; the lowest privacy figure wins
    champion = client.get_model_version_by_alias(ENCODER, "champion")
    assert str(champion.version) == result["version"]
    assert champion.tags["optuna_study"] == "tiny"
    assert int(champion.tags["optuna_trial_number"]) == result["champion_trial"]
    assert champion.tags["trial_run_id"] == runs[result["champion_trial"]].info.run_id
    assert result["champion_trial"] == int(front.sort_values("reid_rate_worst").iloc[0, 0])
    # chosen on validation, reported on test
    assert "champion_test_reid_rate_worst" in parent.data.metrics
    assert parent.data.metrics["bar_corr_matrix_mad"] == 2.0

    # what tuning adds to the store (CSVs, a trial's saved encoder) holds no patient row
    encoder = tracking.download_run_artifacts(champion.tags["trial_run_id"], "encoder")
    features = load_dataset("breast").features
    assert find_leaked_rows(folder, features) == find_leaked_rows(encoder, features) == []


def test_impossible_bar_promotes_nothing_says_why_and_redoes_no_trial(tiny, capsys):
    result, storage = tiny
    before = MlflowClient().get_model_version_by_alias(ENCODER, "champion").version
    argv = ["tune", "--study-name", "tiny", "--storage", storage, "--n-trials", "3"]
    argv += ["--min-agreement", "1.01", "--max-steps", "40", "--min-steps", "30"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "promotion: none" in out
    assert "no Pareto trial has prediction_agreement >= 1.01" in out
    assert "trials_run: 0" in out  # the study already holds its 3 trials: nothing reruns
    run_id = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id"))
    tags = MlflowClient().get_run(run_id).data.tags
    assert tags["promotion"] == "none" and "1.01" in tags["promotion_reason"]
    assert not tracking.child_runs(run_id)
    assert MlflowClient().get_model_version_by_alias(ENCODER, "champion").version == before
    assert len(_study(storage, "tiny").trials) == 3


def test_a_resumed_tune_reads_the_reference_rows_back_from_the_study(tiny, caplog):
    """The references are measured once per settings, splits, target and code: a resume with
    the same settings reads them (and the promotion bar they set) back from the study."""
    result, storage = tiny
    study = _study(storage, "tiny")
    stored = {k: v for k, v in study.user_attrs.items() if k.startswith("references_")}
    first = pd.read_csv(tracking.download_run_artifacts(result["run_id"], "pareto/references.csv"))
    assert any(pd.DataFrame(v).equals(first) for v in stored.values())

    settings = _tiny_settings(storage, promote=False)
    with caplog.at_level("INFO", logger="anomigan.mlops.tuning"):
        again = tune(settings)
    assert "reference rows: read from study attribute" in caplog.text
    assert again["trials_run"] == 0
    before = MlflowClient().get_run(result["run_id"]).data.metrics
    after = MlflowClient().get_run(again["run_id"]).data.metrics
    refs = [k for k in before if k.startswith("ref_")]
    assert refs and {k: after[k] for k in refs} == {k: before[k] for k in refs}
    # another seed measures its own rows
    other = _tiny_settings(storage, seed=1)
    digests = {"train": "a", "val": "b", "test": "c"}
    assert reference_key(other, "models:/t/1", digests) != reference_key(
        settings, "models:/t/1", digests
    )
    assert reference_key(settings, "models:/t/1", digests) != reference_key(
        settings, "models:/t/2", digests
    )


def test_tunes_started_at_once_on_a_fresh_study_measure_the_reference_rows_once(
    breast_target, tmp_path, caplog
):
    """Two tunes opening a fresh study together (two machines on one storage, each with its
    own handle): one measures the reference rows, the other waits for them and reads them."""
    storage = f"journal:{tmp_path / 'race.journal'}"
    settings = settings_from(dataset="breast", storage=storage, study_name="race", **FAST)
    prep = prepare("breast", None, settings.split_seed, settings.test_size)
    target, codec, target_uri = load_or_train_target(prep, None)
    data = prep.eval_data(target, codec)
    open_study(settings, storage, "race", "breast")
    key = reference_key(settings, target_uri, {"train": "digest"})
    start, rows = threading.Barrier(2), []

    def one_tune() -> None:
        study = _study(storage, "race")
        start.wait()
        rows.append(study_reference_rows(study, key, data, target, codec, settings, storage))

    with caplog.at_level("INFO", logger="anomigan.mlops.tuning"):
        workers = [threading.Thread(target=one_tune) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert caplog.text.count("reference rows: measuring them") == 1
    assert caplog.text.count("reference rows: read from study attribute") == 1
    assert len(rows) == 2 and rows[0] == rows[1] == _study(storage, "race").user_attrs[key]


def test_hopeless_trials_are_pruned_from_checkpoints(breast_target, tmp_path):
    storage = f"journal:{tmp_path / 'prune.journal'}"
    settings = settings_from(
        dataset="breast", n_trials=1, storage=storage, study_name="prune", **FAST
    )
    settings.prune_floor, settings.prune_after = 1.01, 0.0  # no trial can reach it
    result = tune(settings)
    (trial,) = _study(storage, "prune").trials
    assert trial.state == TrialState.PRUNED
    (run,) = _trial_runs(result["run_id"]).values()
    assert run.data.tags["optuna_state"] == "PRUNED"
    assert "prune_floor" in run.data.tags["pruned_because"]
    assert result["promotion"] == "none" and "no trial completed" in result["promotion_reason"]


def test_unknown_privacy_objective_is_refused_before_anything_is_created(tmp_path):
    storage = f"journal:{tmp_path / 'bad.journal'}"
    with pytest.raises(ValueError, match="reid_rate_worst"):
        tune(settings_from(n_trials=1, storage=storage, privacy_objective="nonsense", **FAST))
    assert not optuna.get_all_study_names(open_storage(storage))


def test_promote_moves_the_alias_by_hand_with_clear_errors(tiny, capsys):
    import mlflow

    result, _ = tiny
    client = MlflowClient()
    source = client.get_model_version(ENCODER, result["version"]).source
    other = mlflow.register_model(source, ENCODER).version
    assert main(["promote", "--model", ENCODER, "--version", str(other)]) == 0
    assert f"previous_champion: {result['version']}" in capsys.readouterr().out
    assert str(client.get_model_version_by_alias(ENCODER, "champion").version) == str(other)
    assert main(["promote", "--model", ENCODER, "--version", "999"]) == 2
    assert "no version 999" in capsys.readouterr().err
    assert main(["promote", "--model", "anomigan-encoder-nope", "--version", "1"]) == 2
    assert "no registered model" in capsys.readouterr().err
    assert main(["promote", "--model", ENCODER, "--version", result["version"]]) == 0


def test_two_workers_share_one_study_and_each_trial_lands_once(breast_target, tmp_path):
    storage = f"journal:{tmp_path / 'workers.journal'}"
    settings = settings_from(
        dataset="breast", n_trials=3, n_workers=2, storage=storage, study_name="w", **FAST
    )
    settings.promote, settings.min_agreement, settings.max_corr_mad = False, 0.0, 2.0
    result = tune(settings)
    trials = _study(storage, "w").trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    runs = _trial_runs(result["run_id"])
    assert sorted(runs) == [0, 1, 2]
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {r.info.run_id for r in runs.values()}
    owners = {t.user_attrs["owner"]["pid"] for t in trials}
    assert len(owners) == 2 and os.getpid() not in owners  # both spawned workers took trials
    assert result["promotion"] == "skipped"  # a trial met the bar, but promotion was off


def test_sigkill_mid_study_then_resume_loses_and_redoes_nothing(breast_target, cli_env, tmp_path):
    storage = f"journal:{tmp_path / 'kill.journal'}"
    cmd = [str(Path(sys.executable).parent / "anomigan"), "tune", "--study-name", "kill"]
    cmd += ["--storage", storage, "--n-trials", "3", "--no-promote", "--prune-floor", "0"]
    cmd += ["--min-steps", "30", "--max-steps", "40", "--n-records", "60"]
    log = open(tmp_path / "killed.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, env=cli_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            with_running = False
            if optuna.get_all_study_names(open_storage(storage)):
                study = _study(storage, "kill")
                states = [t.state for t in study.trials]
                with_running = TrialState.COMPLETE in states and TrialState.RUNNING in states
            if with_running:
                break
        assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()

    before = {t.number: t for t in _study(storage, "kill").trials}
    done = {n: t for n, t in before.items() if t.state == TrialState.COMPLETE}
    killed = [n for n, t in before.items() if t.state == TrialState.RUNNING]
    assert done and killed  # (its MLflow run id may not be on the trial yet: found by tags)

    out = subprocess.run(cmd, env=cli_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"trials_run: {3 - len(done)}" in out.stdout
    run_id = next(s.split(": ")[1] for s in out.stdout.splitlines() if s.startswith("run_id"))

    after = _study(storage, "kill").trials
    finished = [t for t in after if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3
    for n, t in done.items():  # completed trials kept as they were, not rerun
        assert after[n].state == TrialState.COMPLETE
        assert after[n].values == t.values
        assert after[n].datetime_complete == t.datetime_complete
    assert [after[n].state for n in killed] == [TrialState.FAIL] * len(killed)
    assert_trials_land_once(_study(storage, "kill"), 3)
    new = _trial_runs(run_id)
    assert len(new) == 3 - len(done) and not set(new) & set(done)
    parents = MlflowClient().search_runs(
        [MlflowClient().get_run(run_id).info.experiment_id],
        filter_string="tags.optuna_study = 'kill'",
    )
    statuses = {r.info.run_id: r.info.status for r in parents if r.info.run_name.startswith("tune")}
    assert sorted(statuses.values()) == ["FINISHED", "KILLED"]  # the killed tune's run is ended


def _tune_cmd(storage: str, name: str, n_trials: int, workers: int = 1) -> list[str]:
    cmd = [str(Path(sys.executable).parent / "anomigan"), "tune", "--study-name", name]
    cmd += ["--storage", storage, "--n-trials", str(n_trials), "--n-workers", str(workers)]
    cmd += ["--no-promote", "--prune-floor", "0", "--n-records", "60"]
    return cmd + ["--min-steps", "20", "--max-steps", "30"]


def kill_at_every_point_then_resume(storage: str, name: str, env: dict) -> None:
    """One real `anomigan tune` process per crash point, each SIGKILLed (by the test hook) at
    that point of the trial it runs and resumed by the next; a last resume finishes the study.
    The first process completes trial 0 (train's defaults) before its kill. After each kill the
    study holds that trial and one RUNNING dead one; at the end two finished trials with one
    FINISHED run each, the dead ones FAIL with their runs ended."""
    baseline = None
    for i, point in enumerate(CRASH_POINTS):
        out = subprocess.run(
            _tune_cmd(storage, name, 2),
            env={**env, KILL_AT_ENV: f"{point}:1" if i == 0 else point},
            capture_output=True,
            text=True,
        )
        assert out.returncode == -signal.SIGKILL, (point, out.returncode, out.stderr[-3000:])
        states = [t.state for t in _study(storage, name).trials]
        baseline = baseline or _study(storage, name).trials[0]
        assert states[0] == TrialState.COMPLETE, states
        if point == "told":  # killed after its trial was told: the study is complete
            assert states.count(TrialState.COMPLETE) == 2, states
            assert states.count(TrialState.RUNNING) == 0, states
        else:
            assert states.count(TrialState.COMPLETE) == 1, (point, states)
            assert states.count(TrialState.RUNNING) == 1, (point, states)
    out = subprocess.run(_tune_cmd(storage, name, 2), env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trials_run: 0" in out.stdout  # the `told` kill had already finished trial 2
    study = _study(storage, name)
    assert_trials_land_once(study, 2)
    assert study.trials[0].values == baseline.values  # never rerun
    # a dead trial that had parameters is rerun once with them (retry_of), never twice
    retries = [t.user_attrs["retry_of"] for t in study.trials if "retry_of" in t.user_attrs]
    assert retries and len(retries) == len(set(retries))
    for number in retries:
        retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == number)
        assert retry.params == study.trials[number].params


def test_a_kill_at_any_point_of_a_trial_is_recovered_on_resume(breast_target, cli_env, tmp_path):
    kill_at_every_point_then_resume(f"journal:{tmp_path / 'points.journal'}", "points", cli_env)
