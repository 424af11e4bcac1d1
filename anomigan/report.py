"""The evaluation report: tables, figures and sentences generated from measured numbers only.

`write_report` takes the result dicts of one or more `evaluate` runs (one per data set, as
`evaluation.run_sweeps` returns them plus `dataset`/`run_id`) and writes report.md with its
figures/ and tables/ next to it. No conclusion is written in advance: every comparison
sentence is computed from the settings' metrics, and a loss for AnomiGAN is reported as such.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# utility figures: True when higher is better
UTILITY = {
    "prediction_agreement": True,
    "tstr_accuracy": True,
    "corr_matrix_mad": False,
}
# utility figures a class prototype cannot fake (issue 7)
HONEST_UTILITY = ("corr_matrix_mad", "tstr_accuracy")
PRIVACY = (
    "reid_rate",
    "reid_rate_oracle",
    "reid_rate_inversion",
    "reid_rate_worst",
    "ind_advantage",
    "ind_advantage_same_class",
    "ind_advantage_oracle",
)
TABLE_METRICS = (
    "prediction_agreement",
    "anon_accuracy",
    "anon_auc",
    "correlation",
    "tstr_accuracy",
    "corr_matrix_mad",
    "reid_rate",
    "reid_rate_oracle",
    "reid_rate_inversion",
    "ind_advantage",
    "ind_advantage_same_class",
    "ind_advantage_oracle",
    "dcr_median",
    "attribute_inference_gain",
)
TIE = 0.005  # utility differences below this are called ties


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


def _with_worst(settings: Sequence[dict]) -> list[dict]:
    """Adds reid_rate_worst: the best of the three linkage attacks, per setting."""
    out = []
    for s in settings:
        m = dict(s["metrics"])
        linked = [m[k] for k in ("reid_rate", "reid_rate_oracle", "reid_rate_inversion") if k in m]
        if linked:
            m["reid_rate_worst"] = max(linked)
        out.append({**s, "metrics": m})
    return out


def _unique(settings: Sequence[dict]) -> list[dict]:
    """Drop repeats of the same measured setting (the base encoder sits in both sweeps)."""
    seen, out = set(), []
    for s in settings:
        key = (s["method"], tuple(sorted(s["metrics"].items())))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _label(s: dict) -> str:
    if s["method"] == "anomigan":
        p = s["params"]
        return f"anomigan λe={p['lambda_e']:g} δ={p['inference_delta']:g}"
    if s["method"] == "laplace_dp":
        return f"dp λ={s['param']:g}"
    return s["method"]


def compare(
    settings: Sequence[dict], privacy: str, utility: str, other: str
) -> list[tuple[dict, str, dict | None]]:
    """For each AnomiGAN setting: the best `other` setting at least as private (privacy figure
    <= AnomiGAN's) on `utility`, and whether AnomiGAN is better, worse, tied, or unmatched."""
    higher = UTILITY[utility]
    mine = [s for s in settings if s["method"] == "anomigan"]
    theirs = [s for s in settings if s["method"] == other]
    out = []
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


def _comparison_sentences(name: str, settings: list[dict]) -> list[str]:
    lines = []
    for privacy in ("reid_rate_worst", "ind_advantage_same_class", "reid_rate"):
        for other, other_name in (
            ("laplace_dp", "DP (Laplace)"),
            ("class_prototype", "the prototype"),
        ):
            for utility in UTILITY:
                res = compare(settings, privacy, utility, other)
                if not res:
                    continue
                counts = {k: sum(r[1] == k for r in res) for k in ("better", "worse", "tie")}
                unmatched = sum(r[1] == "unmatched" for r in res)
                text = (
                    f"- {name}, privacy judged by `{privacy}`, utility `{utility}`: AnomiGAN is "
                    f"better than {other_name} at {counts['better']} of {len(res)} settings, "
                    f"worse at {counts['worse']}, tied at {counts['tie']}"
                )
                if unmatched:
                    text += f"; at {unmatched} no {other_name} setting was as private"
                worse = [r for r in res if r[1] == "worse"]
                if worse:
                    a, _, b = max(
                        worse,
                        key=lambda r: abs(r[0]["metrics"][utility] - r[2]["metrics"][utility]),
                    )
                    text += (
                        f". Largest loss: {_label(a)} ({utility} {_fmt(a['metrics'][utility])}, "
                        f"{privacy} {_fmt(a['metrics'][privacy])}) against {_label(b)} "
                        f"({_fmt(b['metrics'][utility])}, {_fmt(b['metrics'][privacy])})"
                    )
                lines.append(text + ".")
    wins = []
    for a in [s for s in settings if s["method"] == "anomigan"]:
        for utility in HONEST_UTILITY:
            verdicts = []
            for other in ("laplace_dp", "class_prototype"):
                r = [x for x in compare(settings, "reid_rate_worst", utility, other) if x[0] is a]
                verdicts.append(r[0][1] if r else "unmatched")
            if all(v in ("better", "unmatched") for v in verdicts) and "better" in verdicts:
                wins.append(f"{_label(a)} on `{utility}`")
    if wins:
        lines.append(
            f"- {name}: AnomiGAN wins by issue 7's criterion (beats DP and the prototype on a "
            "utility figure the prototype cannot fake, at equal or better `reid_rate_worst`) "
            f"at: {'; '.join(wins)}."
        )
    else:
        lines.append(
            f"- {name}: AnomiGAN wins by issue 7's criterion (beats DP and the prototype on "
            "`corr_matrix_mad` or `tstr_accuracy` at equal or better `reid_rate_worst`) at no "
            "measured setting."
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
    dp = _sweep(settings, "laplace_dp", "dp")
    for metric in ("anon_accuracy", "anon_auc", "correlation"):
        if len(delta) >= 2 and len(dp) >= 2:
            a0, a1 = delta[0]["metrics"][metric], delta[-1]["metrics"][metric]
            d0, d1 = dp[0]["metrics"][metric], dp[-1]["metrics"][metric]
            keeps = (a0 - a1) < (d0 - d1)
            lines.append(
                f"- {name}: `{metric}` goes from {_fmt(a0)} to {_fmt(a1)} for AnomiGAN as δ rises "
                f"from {delta[0]['param']:g} to {delta[-1]['param']:g}, and from {_fmt(d0)} to "
                f"{_fmt(d1)} for DP as λ rises from {dp[0]['param']:g} to {dp[-1]['param']:g}: "
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


def _goals(name: str, settings: list[dict], baseline: float) -> tuple[str, list[str]]:
    """Issue 7's privacy targets for AnomiGAN settings with prediction_agreement >= 0.95."""
    proto = next((s for s in settings if s["method"] == "class_prototype"), None)
    dp = _sweep(settings, "laplace_dp", "dp")
    mad_limit = min(
        [s["metrics"]["corr_matrix_mad"] for s in [proto, dp[0] if dp else None] if s is not None]
        or [math.inf]
    )
    targets = {
        "reid_rate": 2 * baseline,
        "reid_rate_oracle": 2 * baseline,
        "reid_rate_inversion": 2 * baseline,
        "ind_advantage_same_class": 0.05,
        "ind_advantage_oracle": 0.05,
        "corr_matrix_mad": mad_limit,
    }
    ok_settings = [
        s
        for s in settings
        if s["method"] == "anomigan" and s["metrics"]["prediction_agreement"] >= 0.95
    ]
    header = ["setting", "agreement", *targets]
    rows = []
    for s in ok_settings:
        m = s["metrics"]
        rows.append(
            [_label(s), m["prediction_agreement"]]
            + [f"{_fmt(m[k])} {'ok' if m[k] <= v else 'MISS'}" for k, v in targets.items()]
        )
    limits = ", ".join(f"`{k}` <= {_fmt(v)}" for k, v in targets.items())
    lines = [f"Targets ({name}, 1/N = {_fmt(baseline, 4)}): {limits}."]
    if not ok_settings:
        lines.append(f"- {name}: no AnomiGAN setting reached prediction_agreement >= 0.95.")
    for k, v in targets.items():
        met = [s for s in ok_settings if s["metrics"][k] <= v]
        if ok_settings and not met:
            closest = min(ok_settings, key=lambda s: s["metrics"][k])
            moves = []
            for sweep, knob in (("delta", "δ"), ("lambda_e", "λe")):
                sw = _sweep(settings, "anomigan", sweep)
                if len(sw) >= 2:
                    moves.append(
                        f"{knob} {sw[0]['param']:g}->{sw[-1]['param']:g} moves it "
                        f"{_fmt(sw[0]['metrics'][k])}->{_fmt(sw[-1]['metrics'][k])}"
                    )
            lines.append(
                f"- {name}: `{k}` target {_fmt(v)} missed by every setting with agreement >= "
                f"0.95; closest {_fmt(closest['metrics'][k])} ({_label(closest)}); "
                + "; ".join(moves)
                + "."
            )
    return _md_table(header, rows), lines


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
    from anomigan import plots

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    md: list[str] = [
        "# AnomiGAN privacy-utility evaluation",
        "",
        "Every number below was measured by the `evaluate` job on a fixed test split; every "
        "sentence is generated from those numbers. AnomiGAN's output is *not* differentially "
        "private: only the Laplace baseline carries an ε. Privacy figures are attack success "
        "rates (lower = more private); `reid_rate_worst` is the best of the nearest-record, "
        "re-anonymising (oracle) and inversion linkage attacks. Comparisons at equal privacy "
        "use point estimates; differences in utility below "
        f"{TIE} are called ties.",
        "",
    ]
    table2_rows = []
    for res in results:
        name = res.get("dataset", "data")
        settings = _with_worst(res["settings"])
        uniq = _unique(settings)
        baseline = res["random_baseline"]
        md += [f"## {name}", ""]
        cfg = res.get("config", {})
        md.append(
            f"{res['n_train']} training and {res['n_test']} test records, {res['n_features']} "
            f"model features; random re-identification baseline 1/N = {_fmt(baseline, 4)}; "
            f"{cfg.get('n_records', '?')} anonymised test records and {cfg.get('n_games', '?')} "
            f"games per setting; quick mode: {cfg.get('quick', False)}; δ sweep "
            + (
                "retrains the encoder per δ."
                if cfg.get("retrain_delta")
                else "varies the inference noise of the encoder trained at the base δ."
            )
            + (
                f" AnomiGAN settings use the served prediction guard (up to "
                f"{cfg['max_resample']} re-draws when the target's class would change); "
                "Table 1 runs without it."
                if cfg.get("max_resample")
                else " AnomiGAN settings run without the prediction guard."
            )
        )
        md.append("")

        header = ["setting", *TABLE_METRICS]
        rows = [
            [_label(s)] + [s["metrics"].get(k, float("nan")) for k in TABLE_METRICS] for s in uniq
        ]
        _write_csv(
            out / "tables" / f"{name}_settings.csv",
            ["setting", "method", "sweep", "param", *sorted(settings[0]["metrics"])],
            [
                [
                    s["name"],
                    s["method"],
                    s["sweep"],
                    s["param"],
                    *[s["metrics"].get(k, "") for k in sorted(settings[0]["metrics"])],
                ]
                for s in settings
            ],
        )
        md += ["### Settings", "", _md_table(header, rows), ""]

        leak = settings[0]["metrics"].get("class_leak_bound")
        if leak is not None:
            m0 = settings[0]["metrics"]
            md.append(
                f"Class-leak bound (random-pair game, adversary reads only the predicted class): "
                f"{_fmt(leak)} [{_fmt(m0['class_leak_bound_ci_low'])}, "
                f"{_fmt(m0['class_leak_bound_ci_high'])}]. Any release that keeps the prediction "
                "can be distinguished at least this well in the paper's game, so its perfect-"
                "security definition (advantage 0) cannot hold for a prediction-keeping release; "
                "`ind_advantage_same_class` measures what the encoder hides beyond the class."
            )
            md.append("")

        md += ["### Comparisons at equal measured privacy", ""]
        md += _comparison_sentences(name, uniq) + [""]
        md += ["### The paper's claims", ""]
        md += _paper_claims(name, settings, res["table1"]) + [""]

        goals_table, goal_lines = _goals(name, uniq, baseline)
        md += ["### Privacy targets at prediction_agreement >= 0.95 (issue 7)", "", goals_table, ""]
        md += goal_lines + [""]

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
        figs: list[tuple[str, str]] = []
        delta, dp = _sweep(settings, "anomigan", "delta"), _sweep(settings, "laplace_dp", "dp")
        lam = _sweep(settings, "anomigan", "lambda_e")

        def series(ss: list[dict]) -> tuple[list[float], dict[str, list[float]]]:
            keys = ("correlation", "anon_accuracy", "anon_auc")
            return [s["param"] for s in ss], {k: [s["metrics"][k] for s in ss] for k in keys}

        if delta or dp:
            fig = plots.privacy_parameter_figure(
                {"anomigan (δ)": series(delta), "laplace_dp (λ)": series(dp)},
                title=f"{name}: AnomiGAN (δ, λe={cfg.get('base_lambda_e', 0.5)}) vs DP (λ)",
            )
            figs.append((f"{name}_fig5_6_privacy_parameter.png", fig))
        if lam:
            fig = plots.privacy_parameter_figure(
                {"anomigan (λe)": series(lam), "laplace_dp (λ)": series(dp)},
                xlabel="λe for AnomiGAN, λ for DP",
                title=f"{name}: AnomiGAN (λe, δ={cfg.get('base_delta', 0.3)}) vs DP (λ)",
            )
            figs.append((f"{name}_fig8_lambda_e.png", fig))
        heat = {k: np.array(v, dtype=float) for k, v in res["corr_anonymized"].items()}
        fig = plots.correlation_heatmaps_figure(
            np.array(res["corr_original"], dtype=float), heat, f"{name}: feature correlations"
        )
        figs.append((f"{name}_fig7_correlation_heatmaps.png", fig))
        points = [
            {"method": s["method"], "label": _label(s), "metrics": s["metrics"]} for s in uniq
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
            import matplotlib.pyplot as plt

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
