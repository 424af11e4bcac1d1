"""The evaluation report: tables, figures and sentences generated from measured numbers only.

`write_report` takes the result dicts of one or more `evaluate` runs (one per data set, as
`evaluation.run_sweeps` returns them plus `dataset`/`run_id`) and writes report.md with its
figures/ and tables/ next to it. No conclusion is written in advance: every comparison
sentence is computed from the settings' metrics, and a loss for AnomiGAN is reported as such.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from anomigan.privacy import plots
from anomigan.privacy.findings import (
    HEADLINE_METRICS,
    PRIVACY,
    PRIVACY_AXIS,
    TABLE_METRICS,
    TIE,
    UTILITY,
    fmt,
    inversion_table,
    kind_of,
    label_of,
    md_table,
    paper_claims,
    sweep_of,
    unique_settings,
    verdict,
    with_ci,
)

__all__ = ["HEADLINE_METRICS", "write_report"]


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def write_report(results: Sequence[dict], out_dir: str | Path) -> Path:
    """Write report.md, figures/*.png and tables/*.csv|md for one or more evaluated data sets."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    md: list[str] = [
        "# AnomiGAN privacy-utility evaluation",
        "",
        "Every number below was measured by the `evaluate` job on the test split and averaged "
        "over several splits (± is the 95% interval over them); every sentence is generated "
        "from those numbers. AnomiGAN's output is *not* differentially private, and neither is "
        "the Laplace mechanism's once the prediction guard re-draws it: only the unguarded "
        f"Laplace baseline carries an ε. Privacy figures are attack success rates (lower = more "
        f"private); `{PRIVACY_AXIS}` is the most any linkage attack links (nearest record, "
        "re-anonymising oracle with one draw and with the mean of several, the target's score, "
        "score and features, inversion). Comparisons at equal privacy use the means; utility "
        f"differences below {TIE} are called ties.",
        "",
    ]
    table2_rows = []
    for res in results:
        name = res.get("dataset", "data")
        settings = list(res["settings"])
        uniq = unique_settings(settings)
        baseline = res["random_baseline"]
        k = res.get("n_classes", 2)
        md += [f"## {name}", ""]
        cfg = res.get("config", {})
        seeds = res.get("split_seeds", [])
        md.append(
            f"{res['n_train']} training, {res.get('n_val', 0)} validation and {res['n_test']} "
            f"test records, {res['n_features']} model features, split seeds "
            f"{', '.join(map(str, seeds)) or '?'}; random re-identification baseline "
            f"1/N = {fmt(baseline, 4)}, and {fmt(k * baseline, 4)} for an adversary who "
            f"knows the predicted class; {cfg.get('n_records', '?')} anonymised test records "
            f"and {cfg.get('n_games', '?')} games per setting; quick mode: "
            f"{cfg.get('quick', False)}; δ sweep "
            + (
                "retrains the encoder per δ."
                if cfg.get("retrain_delta")
                else "varies the inference noise of the encoder trained at the base δ."
            )
            + (
                f" Every anonymiser but the unguarded Laplace runs, identity and AnomiGAN's "
                f"guard-off ablation, releases through the same prediction guard (up to "
                f"{cfg['max_resample']} re-draws when the target's class would change); "
                "Table 1 runs without it."
                if cfg.get("max_resample")
                else " No anonymiser runs with the prediction guard."
            )
        )
        md.append("")
        md += ["### Verdict", ""] + verdict(name, uniq) + [""]

        head = [s for s in uniq if s.get("sweep") not in ("delta", "lambda_e", "dp", "dp_guard")]
        head += [s for s in uniq if s.get("sweep") in ("dp", "dp_guard") and s["param"] == min(
            x["param"] for x in uniq if x.get("sweep") in ("dp", "dp_guard"))]  # fmt: skip
        header = ["anonymiser", *HEADLINE_METRICS]
        rows = [[label_of(s)] + [with_ci(s, m) for m in HEADLINE_METRICS] for s in head]
        md += ["### Headline: means over the splits", "", md_table(header, rows), ""]

        metric_names = sorted(settings[0]["metrics"])
        _write_csv(
            out / "tables" / f"{name}_settings.csv",
            ["setting", "anonymizer", "method", "sweep", "param", *metric_names],
            [
                [s["name"], kind_of(s), s["method"], s["sweep"], s["param"]]
                + [s["metrics"].get(m, "") for m in metric_names]
                for s in settings
            ],
        )
        header = ["setting", *TABLE_METRICS]
        rows = [
            [label_of(s)] + [s["metrics"].get(m, float("nan")) for m in TABLE_METRICS] for s in uniq
        ]
        md += ["### Every setting (means over the splits)", "", md_table(header, rows), ""]

        leak = settings[0]["metrics"].get("class_leak_bound")
        if leak is not None:
            m0 = settings[0]["metrics"]
            md.append(
                f"Class-leak bound (random-pair game, adversary reads only the predicted class): "
                f"{fmt(leak)} [{fmt(m0['class_leak_bound_ci_low'])}, "
                f"{fmt(m0['class_leak_bound_ci_high'])}]. Any release that keeps the prediction "
                "can be distinguished at least this well in the paper's game, so its perfect-"
                "security definition (advantage 0) cannot hold for a prediction-keeping release; "
                "`ind_advantage_same_class` measures what an anonymiser hides beyond the class."
            )
            md.append("")

        md += ["### The paper's claims", ""]
        md += paper_claims(name, settings, res["table1"]) + [""]

        inv_table, inv_lines = inversion_table(name, uniq)
        md += ["### Inversion adversary by model capacity", "", inv_table, ""] + inv_lines + [""]

        # Table 1
        t1h = ["layer", "correlation", "accuracy", "auc", "prediction_agreement", "n_records"]
        t1r = [[r[k] for k in t1h] for r in res["table1"]]
        _write_csv(out / "tables" / f"{name}_table1.csv", t1h, t1r)
        (out / "tables" / f"{name}_table1.md").write_text(md_table(t1h, t1r) + "\n")
        md += [
            "### Table 1: variance of one encoder layer at a time "
            f"(x{cfg.get('table1_noise_scale', 1)}), {cfg.get('table1_repeats', '?')} repeats "
            "of the test split",
            "",
            md_table(t1h, t1r),
            "",
        ]
        t2 = res["table2"]
        table2_rows.append(
            [
                name,
                t2["train_steps"],
                t2["train_seconds"],
                t2["run_seconds_test_split"],
                t2["anonymize_rows_per_second"],
            ]
        )

        # figures
        figs: list[tuple[str, Figure]] = []
        base = res.get("base", {})
        delta = sweep_of(settings, "anomigan", "delta")
        dp = sweep_of(settings, "laplace_dp", "dp_guard")
        lam = sweep_of(settings, "anomigan", "lambda_e")

        def series(ss: list[dict]) -> tuple[list[float], dict[str, list[float]]]:
            keys = ("correlation", "anon_accuracy", "anon_auc")
            return [s["param"] for s in ss], {k: [s["metrics"][k] for s in ss] for k in keys}

        if delta or dp:
            fig = plots.privacy_parameter_figure(
                {"anomigan (δ)": series(delta), "laplace_dp + guard (λ)": series(dp)},
                title=f"{name}: AnomiGAN (δ, λe={base.get('lambda_e', '?')}) vs DP (λ)",
            )
            figs.append((f"{name}_fig5_6_privacy_parameter.png", fig))
        if lam:
            fig = plots.privacy_parameter_figure(
                {"anomigan (λe)": series(lam), "laplace_dp + guard (λ)": series(dp)},
                xlabel="λe for AnomiGAN, λ for DP",
                title=f"{name}: AnomiGAN (λe, δ={base.get('delta', '?')}) vs DP (λ)",
            )
            figs.append((f"{name}_fig8_lambda_e.png", fig))
        heat = {k: np.array(v, dtype=float) for k, v in res["corr_anonymized"].items()}
        fig = plots.correlation_heatmaps_figure(
            np.array(res["corr_original"], dtype=float), heat, f"{name}: feature correlations"
        )
        figs.append((f"{name}_fig7_correlation_heatmaps.png", fig))
        points = [
            {"method": kind_of(s), "label": label_of(s), "metrics": s["metrics"]} for s in uniq
        ]
        for privacy in PRIVACY:
            is_game = privacy.startswith("ind_")
            fig = plots.frontier_figure(
                points,
                privacy,
                tuple(UTILITY),
                baseline=0.0 if is_game else baseline,
                baseline_label="chance (advantage 0)" if is_game else "random guess 1/N",
                title=f"{name}: {privacy} against utility",
            )
            figs.append((f"{name}_frontier_{privacy}.png", fig))
        md += ["### Figures", ""]
        for fname, fig in figs:
            fig.savefig(out / "figures" / fname, dpi=110)
            plt.close(fig)
            md.append(f"![{fname}](figures/{fname})")
        md.append("")

    t2h = ["dataset", "train_steps", "train_seconds", "run_seconds_test_split", "rows_per_second"]
    _write_csv(out / "tables" / "table2.csv", t2h, table2_rows)
    (out / "tables" / "table2.md").write_text(md_table(t2h, table2_rows) + "\n")
    md += ["## Table 2: training and running time", "", md_table(t2h, table2_rows), ""]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
