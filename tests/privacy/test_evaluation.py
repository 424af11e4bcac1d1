"""The `evaluate` and `report` jobs end to end in quick mode: real training, real MLflow."""

from pathlib import Path

import mlflow
import pytest
from support import find_leaked_rows

from anomigan.data import load_dataset
from anomigan.mlops import tracking

METHODS = {"anomigan", "laplace_dp", "identity", "class_prototype", "class_copula", "copula_blend",
           "score_copula", "score_bin_copula"}  # fmt: skip
ANONYMIZERS = METHODS | {"anomigan_guard_off", "anomigan_noise_off", "laplace_dp_guard"}


def test_parent_run_holds_every_setting_as_a_nested_run(quick_evaluation) -> None:
    parent = mlflow.get_run(quick_evaluation["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["anomigan_job"] == "evaluate"
    children = tracking.child_runs(parent.info.run_id)
    assert len(children) == quick_evaluation["n_settings"]
    by_method = {}
    for child in children:
        by_method.setdefault(child.data.tags["anomigan_method"], []).append(child)
    assert set(by_method) == METHODS
    sweeps = {c.data.tags["anomigan_sweep"] for c in by_method["anomigan"]}
    assert sweeps == {"defaults", "ablation", "delta", "lambda_e"}
    assert {c.data.params["anonymizer"] for c in children} == ANONYMIZERS
    blends = sorted(float(c.data.params["blend_a"]) for c in by_method["copula_blend"])
    assert blends == [0.2, 0.8]
    assert [int(c.data.params["n_draws"]) for c in by_method["score_copula"]] == [4]
    assert [int(c.data.params["bins"]) for c in by_method["score_bin_copula"]] == [2]
    for child in children:
        m = child.data.metrics
        kind = child.data.params["anonymizer"]
        unguarded = kind in ("laplace_dp", "identity", "anomigan_guard_off")
        assert child.data.params["guard"] == ("0" if unguarded else "1"), kind
        assert m["n_seeds"] == 2
        # the mean over splits of each split's worst attack: at least the worst mean
        assert m["reid_rate_worst"] >= max(
            m[k] for k in ("reid_rate", "reid_rate_oracle", "reid_rate_oracle_multi",
                           "reid_rate_score", "reid_rate_score_features", "reid_rate_inversion")
        ) - 1e-12  # fmt: skip
        for key in (
            "prediction_agreement",
            "score_rank_corr",
            "score_mae",
            "reid_rate",
            "reid_rate_oracle",
            "reid_rate_oracle_multi",
            "reid_rate_score",
            "reid_rate_score_features",
            "reid_rate_worst",
            "reid_rate_worst_seed_ci95",
            "reid_rate_inversion",
            "ind_advantage",
            "ind_advantage_same_class",
            "ind_advantage_oracle",
            "class_leak_bound",
            "dcr_median",
            "tstr_accuracy",
            "corr_matrix_mad",
            "attribute_inference_gain",
        ):
            assert key in m, (child.data.tags["mlflow.runName"], key)
        assert m["ind_advantage_ci_low"] <= m["ind_advantage"] <= m["ind_advantage_ci_high"]
    for dp in by_method["laplace_dp"]:
        p = dp.data.params
        if p["anonymizer"] == "laplace_dp_guard":  # the guard's re-draws void the ε
            assert "epsilon_per_feature" not in p and "epsilon_per_record" not in p
            continue
        assert float(p["epsilon_per_feature"]) == pytest.approx(1 / float(p["lambda"]))
        assert float(p["epsilon_per_record"]) == pytest.approx(30 / float(p["lambda"]))
    identity = by_method["identity"][0].data.metrics
    assert identity["reid_rate"] == 1.0 and identity["prediction_agreement"] == 1.0
    assert identity["ind_advantage"] == pytest.approx(0.5)
    assert identity["reid_rate_inversion"] == 1.0 and identity["reid_rate_worst"] == 1.0
    copula = by_method["class_copula"][0].data.metrics
    assert copula["prediction_agreement"] == 1.0  # guarded
    assert copula["reid_rate_worst"] < 0.05


def test_artifacts_tables_figures_and_report(quick_evaluation, tmp_path: Path) -> None:
    run_id = quick_evaluation["run_id"]
    report = Path(tracking.download_run_artifacts(run_id, "report"))
    table1 = (report / "tables" / "breast_table1.csv").read_text().splitlines()
    assert table1[0].startswith("layer,correlation,accuracy,auc")
    assert [r.split(",")[0] for r in table1[1:]] == ["none", "1", "2", "3", "4", "5", "6", "7"]
    assert (report / "tables" / "breast_table1.md").exists()
    assert (report / "tables" / "table2.csv").exists()
    figures = {p.name for p in (report / "figures").glob("*.png")}
    for name in (
        "breast_fig5_6_privacy_parameter.png",
        "breast_fig8_lambda_e.png",
        "breast_fig7_correlation_heatmaps.png",
        "breast_frontier_reid_rate_worst.png",
        "breast_frontier_reid_rate_oracle_multi.png",
        "breast_frontier_reid_rate_score.png",
        "breast_frontier_reid_rate_inversion.png",
    ):
        assert name in figures
    text = (report / "report.md").read_text()
    assert "class-leak bound" in text.lower()
    verdict = text.split("### Verdict")[1].split("###")[0]
    assert "`score_rank_corr` at equal `reid_rate_worst`" in verdict
    assert "class_copula" in verdict and "dominance" in verdict
    # the references and each score copula are counted on separate lines
    assert "of 5 guarded reference points are dominated" in verdict  # copula, 2 blends, 2 λ
    assert "of 1 score copula points are dominated" in verdict
    assert "of 1 score-bin copula points are dominated" in verdict
    assert "issue" not in text.lower()
    assert "differentially private" not in text.replace("*not* differentially private", "")
    for fig in figures:
        assert f"figures/{fig}" in text


def test_report_command_writes_the_report(quick_evaluation, tmp_path: Path) -> None:
    from anomigan.cli import main

    out = tmp_path / "report"
    assert main(["report", "--output", str(out), "--dataset", "breast"]) == 0
    assert "## breast" in (out / "report.md").read_text()
    assert (out / "figures" / "breast_fig7_correlation_heatmaps.png").exists()
    missing = tmp_path / "nothing"
    assert main(["report", "--output", str(missing), "--dataset", "nosuch"]) == 2
    assert not missing.exists()


def test_no_raw_rows_in_the_store(quick_evaluation, mlflow_store: Path) -> None:
    frame = load_dataset("breast").features
    assert find_leaked_rows(mlflow_store, frame) == []


def test_bad_evaluate_input_exits_2_before_any_run(mlflow_store, capsys) -> None:
    from anomigan.cli import main

    before = len(mlflow.search_runs(search_all_experiments=True))
    assert main(["evaluate", "--quick", "true", "--sensitive-column", "no such col"]) == 2
    assert "no such col" in capsys.readouterr().err
    assert main(["evaluate", "--quick", "--known-columns", "mean radius,zzz"]) == 2
    assert len(mlflow.search_runs(search_all_experiments=True)) == before
    with pytest.raises(SystemExit):
        main(["evaluate", "--quick", "maybe"])


def test_report_of_an_unknown_run_exits_2(tmp_path: Path, capsys) -> None:
    from anomigan.cli import main

    out = tmp_path / "r"
    assert main(["report", "--output", str(out), "--run-id", "0" * 32]) == 2
    assert "has no evaluation results" in capsys.readouterr().err
    assert not out.exists()
