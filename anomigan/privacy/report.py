"""The evaluation report: tables, figures and sentences generated from measured numbers only.

`write_report` takes the result dicts of one or more `evaluate` runs (one per data set, as
`evaluation.run_sweeps` returns them plus `dataset`/`run_id`) and writes report.md with its
figures/ and tables/ next to it. No conclusion is written in advance: every comparison
sentence is computed from the settings' metrics, and a loss for AnomiGAN is reported as such.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from anomigan.privacy import plots
from anomigan.privacy.attacks import LINKAGE

# utility figures: True when higher is better
UTILITY = {
    "score_rank_corr": True,
    "corr_matrix_mad": False,
    "tstr_accuracy": True,
    "prediction_agreement": True,
}
PRIVACY_AXIS = "reid_rate_worst"
PRIVACY = (PRIVACY_AXIS, *LINKAGE, "ind_advantage_same_class", "ind_advantage_oracle")
TABLE_METRICS = (
    "prediction_agreement",
    "score_rank_corr",
    "score_mae",
    "corr_matrix_mad",
    "tstr_accuracy",
    "correlation",
    PRIVACY_AXIS,
    *LINKAGE,
    "ind_advantage_same_class",
    "dcr_median",
    "attribute_inference_gain",
)
HEADLINE_METRICS = (
    "prediction_agreement",
    "score_rank_corr",
    "score_mae",
    "corr_matrix_mad",
    "tstr_accuracy",
    PRIVACY_AXIS,
    "reid_rate_oracle",
    "reid_rate_oracle_multi",
    "reid_rate_score",
    "reid_rate_inversion",
)
#: the references every AnomiGAN setting is judged against (the `anonymizer` param)
REFERENCES = ("class_copula", "copula_blend", "laplace_dp_guard", "laplace_dp", "class_prototype")
TIE = 0.005  # utility differences below this are called ties
#: the dominance test: an AnomiGAN setting dominates a reference point when it links no more,
#: keeps score_rank_corr no lower and corr_matrix_mad at most this much higher
CORR_MAD_SLACK = 0.02


def _fmt(v: object, digits: int = 3) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _unique(settings: Sequence[dict]) -> list[dict]:
    """Drop repeats of the same measured setting (the base encoder sits in both sweeps)."""
    seen, out = set(), []
    for s in settings:
        key = (s["method"], tuple(sorted(s["metrics"].items())))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _kind(s: dict) -> str:
    """Which anonymiser a setting is (the nested run's `anonymizer` param)."""
    return s.get("anonymizer") or s["params"].get("anonymizer") or s["method"]


def _label(s: dict) -> str:
    kind = _kind(s)
    if s["method"] == "anomigan":
        p = s["params"]
        extra = {"anomigan_guard_off": ", guard off", "anomigan_noise_off": ", noise off"}
        defaults = " (defaults)" if s.get("sweep") == "defaults" else ""
        noise = p.get("inference_delta", p["delta"])
        shown = noise != p["delta"] and kind not in extra
        inference = f", inference δ={noise:g}" if shown else ""
        return (
            f"anomigan λe={p['lambda_e']:g} δ={p['delta']:g}{inference}"
            f"{extra.get(kind, '')}{defaults}"
        )
    if kind == "laplace_dp":
        return f"laplace λ={s['param']:g}"
    if kind == "laplace_dp_guard":
        return f"laplace λ={s['param']:g} + guard"
    if kind == "copula_blend":
        return f"copula_blend a={s['param']:g} + guard"
    if kind in ("class_copula", "class_prototype"):
        return f"{kind} + guard"
    return kind


def _ci(s: dict, k: str) -> str:
    """A mean with its 95% interval over the splits."""
    m = s["metrics"]
    half = m.get(f"{k}_seed_ci95", float("nan"))
    value = m.get(k, float("nan"))
    return _fmt(value) if not math.isfinite(half) else f"{_fmt(value)} ± {_fmt(half)}"


def compare(
    settings: Sequence[dict], privacy: str, utility: str, other: str
) -> list[tuple[dict, str, dict | None]]:
    """For each AnomiGAN setting: the best `other` setting (by `anonymizer`) at least as
    private (privacy figure <= AnomiGAN's) on `utility`, and whether AnomiGAN is better, worse,
    tied, or unmatched."""
    higher = UTILITY[utility]
    mine = [s for s in settings if _kind(s) == "anomigan"]
    theirs = [s for s in settings if _kind(s) == other]
    out: list[tuple[dict, str, dict | None]] = []
    for a in mine:
        pa = a["metrics"].get(privacy)
        ua = a["metrics"].get(utility)
        if pa is None or ua is None or not math.isfinite(ua):
            continue
        ok = [t for t in theirs if t["metrics"].get(privacy, math.inf) <= pa]
        if not ok:
            out.append((a, "unmatched", None))
            continue
        best = max(ok, key=lambda t: t["metrics"][utility] * (1 if higher else -1))
        diff = (ua - best["metrics"][utility]) * (1 if higher else -1)
        out.append((a, "tie" if abs(diff) < TIE else "better" if diff > 0 else "worse", best))
    return out


def dominates(a: dict, ref: dict, slack: float = CORR_MAD_SLACK) -> bool:
    """`a` links no more than `ref`, keeps the target's score ranking no worse and the
    correlation structure at most `slack` worse."""
    ma, mr = a["metrics"], ref["metrics"]
    return (
        ma[PRIVACY_AXIS] <= mr[PRIVACY_AXIS]
        and ma["score_rank_corr"] >= mr["score_rank_corr"]
        and ma["corr_matrix_mad"] <= mr["corr_matrix_mad"] + slack
    )


def _best_at_equal_privacy(settings: list[dict], utility: str) -> dict[str, int]:
    """For every setting's privacy level: which anonymiser has the best `utility` among the
    settings at least as private. Counts wins per anonymiser."""
    higher = UTILITY[utility]
    wins: dict[str, int] = {}
    for level in sorted({s["metrics"][PRIVACY_AXIS] for s in settings}):
        ok = [
            s
            for s in settings
            if s["metrics"][PRIVACY_AXIS] <= level and math.isfinite(s["metrics"][utility])
        ]
        if ok:
            best = max(ok, key=lambda s: s["metrics"][utility] * (1 if higher else -1))
            wins[_kind(best)] = wins.get(_kind(best), 0) + 1
    return wins


def verdict(name: str, settings: list[dict]) -> list[str]:
    """The report's first words: who wins at equal `reid_rate_worst`, computed, not written."""
    lines = []
    candidates = [s for s in settings if _kind(s) != "identity"]
    for utility in UTILITY:
        wins = _best_at_equal_privacy(candidates, utility)
        if wins:
            order = sorted(wins.items(), key=lambda kv: -kv[1])
            lines.append(
                f"- {name}, `{utility}` at equal `{PRIVACY_AXIS}`: best at "
                + ", ".join(f"{n} of {sum(wins.values())} privacy levels: {k}" for k, n in order)
                + "."
            )
    for other in REFERENCES:
        for utility in ("score_rank_corr", "corr_matrix_mad"):
            res = compare(settings, PRIVACY_AXIS, utility, other)
            if not res or all(r[1] == "unmatched" for r in res):
                continue
            counts = {k: sum(r[1] == k for r in res) for k in ("better", "worse", "tie")}
            unmatched = sum(r[1] == "unmatched" for r in res)
            lines.append(
                f"- {name}, AnomiGAN against {other} on `{utility}` at equal or lower "
                f"`{PRIVACY_AXIS}`: better at {counts['better']} of {len(res)} settings, worse "
                f"at {counts['worse']}, tied at {counts['tie']}"
                + (f", no {other} setting as private at {unmatched}" if unmatched else "")
                + "."
            )
    refs = [s for s in settings if _kind(s) in ("class_copula", "copula_blend", "laplace_dp_guard")]
    mine = [s for s in settings if _kind(s) == "anomigan"]
    beaten = [r for r in refs if any(dominates(a, r) for a in mine)]
    lines.append(
        f"- {name}, dominance (an AnomiGAN setting with `{PRIVACY_AXIS}` no higher, "
        f"`score_rank_corr` no lower, `corr_matrix_mad` at most {CORR_MAD_SLACK} higher): "
        f"{len(beaten)} of {len(refs)} guarded reference points are dominated"
        + (": " + "; ".join(_label(r) for r in beaten) if beaten else "")
        + (
            ". Not dominated: " + "; ".join(_label(r) for r in refs if r not in beaten) + "."
            if len(beaten) < len(refs)
            else "."
        )
    )
    return lines


def _sweep(settings: list[dict], method: str, sweep: str) -> list[dict]:
    return sorted(
        [s for s in settings if s["method"] == method and s["sweep"] == sweep],
        key=lambda s: s["param"],
    )


def _paper_claims(name: str, settings: list[dict], table1: list[dict]) -> list[str]:
    lines = []
    delta = _sweep(settings, "anomigan", "delta")
    for metric, (dp_sweep, dp_name) in itertools.product(
        ("anon_accuracy", "anon_auc", "correlation"),
        (("dp_guard", "DP with the same guard"), ("dp", "DP without a guard, as in the paper")),
    ):
        dp = _sweep(settings, "laplace_dp", dp_sweep)
        if len(delta) >= 2 and len(dp) >= 2:
            a0, a1 = delta[0]["metrics"][metric], delta[-1]["metrics"][metric]
            d0, d1 = dp[0]["metrics"][metric], dp[-1]["metrics"][metric]
            keeps = (a0 - a1) < (d0 - d1)
            lines.append(
                f"- {name}: `{metric}` goes from {_fmt(a0)} to {_fmt(a1)} for AnomiGAN as δ rises "
                f"from {delta[0]['param']:g} to {delta[-1]['param']:g}, and from {_fmt(d0)} to "
                f"{_fmt(d1)} for {dp_name} as λ rises from {dp[0]['param']:g} to "
                f"{dp[-1]['param']:g}: "
                + (
                    "AnomiGAN loses less than DP"
                    if keeps
                    else "AnomiGAN does not lose less than DP here"
                )
                + (
                    f", and ends above DP ({_fmt(a1)} vs {_fmt(d1)})."
                    if a1 > d1
                    else f", but ends at or below DP ({_fmt(a1)} vs {_fmt(d1)})."
                )
            )
    noisy = [r for r in table1 if r["layer"] != "none"]
    if noisy:
        corr = [r["correlation"] for r in noisy]
        acc = [r["accuracy"] for r in noisy]
        lines.append(
            f"- {name}, Table 1: across the {len(noisy)} layers correlation ranges "
            f"{_fmt(min(corr))}-{_fmt(max(corr))} and accuracy {_fmt(min(acc))}-{_fmt(max(acc))} "
            f"(no noise: correlation {_fmt(table1[0]['correlation'])}, accuracy "
            f"{_fmt(table1[0]['accuracy'])})."
        )
    return lines


def _inversion(name: str, settings: list[dict]) -> tuple[str, list[str]]:
    # weakest to strongest, in the order attacks.inversion_models() defines them
    models = [
        k.removeprefix("reid_rate_inversion_")
        for k in settings[0]["metrics"]
        if k.startswith("reid_rate_inversion_")
    ]
    rows = [
        [_label(s)] + [s["metrics"].get(f"reid_rate_inversion_{m}", float("nan")) for m in models]
        for s in settings
    ]
    lines = []
    if len(models) >= 3:
        top, second = models[-1], models[-2]

        def rate(s: dict, m: str) -> float:
            return s["metrics"].get(f"reid_rate_inversion_{m}", 0.0)

        over_rest = [rate(s, top) - max(rate(s, m) for m in models[:-1]) for s in settings]
        over_next = [rate(s, top) - rate(s, second) for s in settings]
        lines.append(
            f"- {name}: the largest inversion model ({top}) beats the best of the weaker ones by "
            f"at most {_fmt(max(over_rest))} across settings, and the next smaller network "
            f"({second}) by at most {_fmt(max(over_next))} (mean {_fmt(float(np.mean(over_next)))})"
            + (
                ": a stronger inversion no longer helps."
                if max(over_rest) <= 0.02 and max(over_next) <= 0.02
                else ": the largest network adds nothing over the best weaker model, but network "
                "capacity has not saturated, so a larger network might still link more."
                if max(over_rest) <= 0.02
                else "; capacity still helps somewhere, so `reid_rate_inversion` may understate "
                "the risk there."
            )
        )
    return _md_table(["setting", *models], rows), lines


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
        uniq = _unique(settings)
        baseline = res["random_baseline"]
        k = res.get("n_classes", 2)
        md += [f"## {name}", ""]
        cfg = res.get("config", {})
        seeds = res.get("split_seeds", [])
        md.append(
            f"{res['n_train']} training, {res.get('n_val', 0)} validation and {res['n_test']} "
            f"test records, {res['n_features']} model features, split seeds "
            f"{', '.join(map(str, seeds)) or '?'}; random re-identification baseline "
            f"1/N = {_fmt(baseline, 4)}, and {_fmt(k * baseline, 4)} for an adversary who "
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
        rows = [[_label(s)] + [_ci(s, m) for m in HEADLINE_METRICS] for s in head]
        md += ["### Headline: means over the splits", "", _md_table(header, rows), ""]

        metric_names = sorted(settings[0]["metrics"])
        _write_csv(
            out / "tables" / f"{name}_settings.csv",
            ["setting", "anonymizer", "method", "sweep", "param", *metric_names],
            [
                [s["name"], _kind(s), s["method"], s["sweep"], s["param"]]
                + [s["metrics"].get(m, "") for m in metric_names]
                for s in settings
            ],
        )
        header = ["setting", *TABLE_METRICS]
        rows = [
            [_label(s)] + [s["metrics"].get(m, float("nan")) for m in TABLE_METRICS] for s in uniq
        ]
        md += ["### Every setting (means over the splits)", "", _md_table(header, rows), ""]

        leak = settings[0]["metrics"].get("class_leak_bound")
        if leak is not None:
            m0 = settings[0]["metrics"]
            md.append(
                f"Class-leak bound (random-pair game, adversary reads only the predicted class): "
                f"{_fmt(leak)} [{_fmt(m0['class_leak_bound_ci_low'])}, "
                f"{_fmt(m0['class_leak_bound_ci_high'])}]. Any release that keeps the prediction "
                "can be distinguished at least this well in the paper's game, so its perfect-"
                "security definition (advantage 0) cannot hold for a prediction-keeping release; "
                "`ind_advantage_same_class` measures what an anonymiser hides beyond the class."
            )
            md.append("")

        md += ["### The paper's claims", ""]
        md += _paper_claims(name, settings, res["table1"]) + [""]

        inv_table, inv_lines = _inversion(name, uniq)
        md += ["### Inversion adversary by model capacity", "", inv_table, ""] + inv_lines + [""]

        # Table 1
        t1h = ["layer", "correlation", "accuracy", "auc", "prediction_agreement", "n_records"]
        t1r = [[r[k] for k in t1h] for r in res["table1"]]
        _write_csv(out / "tables" / f"{name}_table1.csv", t1h, t1r)
        (out / "tables" / f"{name}_table1.md").write_text(_md_table(t1h, t1r) + "\n")
        md += [
            "### Table 1: variance of one encoder layer at a time "
            f"(x{cfg.get('table1_noise_scale', 1)}), {cfg.get('table1_repeats', '?')} repeats "
            "of the test split",
            "",
            _md_table(t1h, t1r),
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
        delta = _sweep(settings, "anomigan", "delta")
        dp = _sweep(settings, "laplace_dp", "dp_guard")
        lam = _sweep(settings, "anomigan", "lambda_e")

        def series(ss: list[dict]) -> tuple[list[float], dict[str, list[float]]]:
            keys = ("correlation", "anon_accuracy", "anon_auc")
            return [s["param"] for s in ss], {k: [s["metrics"][k] for s in ss] for k in keys}

        if delta or dp:
            fig = plots.privacy_parameter_figure(
                {"anomigan (δ)": series(delta), "laplace_dp + guard (λ)": series(dp)},
                title=f"{name}: AnomiGAN (δ, λe={cfg.get('base_lambda_e', 0.5)}) vs DP (λ)",
            )
            figs.append((f"{name}_fig5_6_privacy_parameter.png", fig))
        if lam:
            fig = plots.privacy_parameter_figure(
                {"anomigan (λe)": series(lam), "laplace_dp + guard (λ)": series(dp)},
                xlabel="λe for AnomiGAN, λ for DP",
                title=f"{name}: AnomiGAN (λe, δ={cfg.get('base_delta', 0.3)}) vs DP (λ)",
            )
            figs.append((f"{name}_fig8_lambda_e.png", fig))
        heat = {k: np.array(v, dtype=float) for k, v in res["corr_anonymized"].items()}
        fig = plots.correlation_heatmaps_figure(
            np.array(res["corr_original"], dtype=float), heat, f"{name}: feature correlations"
        )
        figs.append((f"{name}_fig7_correlation_heatmaps.png", fig))
        points = [{"method": _kind(s), "label": _label(s), "metrics": s["metrics"]} for s in uniq]
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
    (out / "tables" / "table2.md").write_text(_md_table(t2h, table2_rows) + "\n")
    md += ["## Table 2: training and running time", "", _md_table(t2h, table2_rows), ""]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
