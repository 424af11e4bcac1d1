"""What the evaluation's numbers say: comparisons, the verdict and the paper's claims, as
sentences and tables computed from measured figures only.

No conclusion is written in advance: every comparison sentence is computed from the settings'
metrics, and a loss for AnomiGAN is reported as such. `anomigan.privacy.report` writes them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

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
REFERENCES = ("class_copula", "copula_blend", "score_copula", "score_bin_copula",
              "laplace_dp_guard", "laplace_dp", "class_prototype")  # fmt: skip
#: the issue's reference points of the dominance count; the score copulas are counted apart
DOMINANCE_REFERENCES = ("class_copula", "copula_blend", "laplace_dp_guard")
TIE = 0.005  # utility differences below this are called ties
#: the dominance test: an AnomiGAN setting dominates a reference point when it links no more,
#: keeps score_rank_corr no lower and corr_matrix_mad at most this much higher
CORR_MAD_SLACK = 0.02


def fmt(v: object, digits: int = 3) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def unique_settings(settings: Sequence[dict]) -> list[dict]:
    """Drop repeats of the same measured setting (the base encoder sits in both sweeps)."""
    seen, out = set(), []
    for s in settings:
        key = (s["method"], tuple(sorted(s["metrics"].items())))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def kind_of(s: dict) -> str:
    """Which anonymiser a setting is (the nested run's `anonymizer` param)."""
    return s.get("anonymizer") or s["params"].get("anonymizer") or s["method"]


def label_of(s: dict) -> str:
    kind = kind_of(s)
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
    if kind == "score_copula":
        return f"score_copula {s['param']:g} draws + guard"
    if kind == "score_bin_copula":
        return f"score_bin_copula {s['param']:g} bins + guard"
    if kind in ("class_copula", "class_prototype"):
        return f"{kind} + guard"
    return kind


def with_ci(s: dict, k: str) -> str:
    """A mean with its 95% interval over the splits."""
    m = s["metrics"]
    half = m.get(f"{k}_seed_ci95", float("nan"))
    value = m.get(k, float("nan"))
    return fmt(value) if not math.isfinite(half) else f"{fmt(value)} ± {fmt(half)}"


def compare(
    settings: Sequence[dict], privacy: str, utility: str, other: str
) -> list[tuple[dict, str, dict | None]]:
    """For each AnomiGAN setting: the best `other` setting (by `anonymizer`) at least as
    private (privacy figure <= AnomiGAN's) on `utility`, and whether AnomiGAN is better, worse,
    tied, or unmatched."""
    higher = UTILITY[utility]
    mine = [s for s in settings if kind_of(s) == "anomigan"]
    theirs = [s for s in settings if kind_of(s) == other]
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


def best_at_equal_privacy(settings: list[dict], utility: str) -> dict[str, int]:
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
            wins[kind_of(best)] = wins.get(kind_of(best), 0) + 1
    return wins


def verdict(name: str, settings: list[dict]) -> list[str]:
    """The report's first words: who wins at equal `reid_rate_worst`, computed, not written."""
    lines = []
    candidates = [s for s in settings if kind_of(s) != "identity"]
    for utility in UTILITY:
        wins = best_at_equal_privacy(candidates, utility)
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
    mine = [s for s in settings if kind_of(s) == "anomigan"]
    for what, kinds in (("guarded reference points", DOMINANCE_REFERENCES),
                        ("score copula points", ("score_copula",)),
                        ("score-bin copula points", ("score_bin_copula",))):  # fmt: skip
        refs = [s for s in settings if kind_of(s) in kinds]
        if not refs:
            continue
        beaten = [r for r in refs if any(dominates(a, r) for a in mine)]
        lines.append(
            f"- {name}, dominance (an AnomiGAN setting with `{PRIVACY_AXIS}` no higher, "
            f"`score_rank_corr` no lower, `corr_matrix_mad` at most {CORR_MAD_SLACK} higher): "
            f"{len(beaten)} of {len(refs)} {what} are dominated"
            + (": " + "; ".join(label_of(r) for r in beaten) if beaten else "")
            + (
                ". Not dominated: " + "; ".join(label_of(r) for r in refs if r not in beaten) + "."
                if len(beaten) < len(refs)
                else "."
            )
        )
    return lines


def sweep_of(settings: list[dict], method: str, sweep: str) -> list[dict]:
    return sorted(
        [s for s in settings if s["method"] == method and s["sweep"] == sweep],
        key=lambda s: s["param"],
    )


def paper_claims(name: str, settings: list[dict], table1: list[dict]) -> list[str]:
    lines = []
    delta = sweep_of(settings, "anomigan", "delta")
    for metric, (dp_sweep, dp_name) in itertools.product(
        ("anon_accuracy", "anon_auc", "correlation"),
        (("dp_guard", "DP with the same guard"), ("dp", "DP without a guard, as in the paper")),
    ):
        dp = sweep_of(settings, "laplace_dp", dp_sweep)
        if len(delta) >= 2 and len(dp) >= 2:
            a0, a1 = delta[0]["metrics"][metric], delta[-1]["metrics"][metric]
            d0, d1 = dp[0]["metrics"][metric], dp[-1]["metrics"][metric]
            keeps = (a0 - a1) < (d0 - d1)
            lines.append(
                f"- {name}: `{metric}` goes from {fmt(a0)} to {fmt(a1)} for AnomiGAN as δ rises "
                f"from {delta[0]['param']:g} to {delta[-1]['param']:g}, and from {fmt(d0)} to "
                f"{fmt(d1)} for {dp_name} as λ rises from {dp[0]['param']:g} to "
                f"{dp[-1]['param']:g}: "
                + (
                    "AnomiGAN loses less than DP"
                    if keeps
                    else "AnomiGAN does not lose less than DP here"
                )
                + (
                    f", and ends above DP ({fmt(a1)} vs {fmt(d1)})."
                    if a1 > d1
                    else f", but ends at or below DP ({fmt(a1)} vs {fmt(d1)})."
                )
            )
    noisy = [r for r in table1 if r["layer"] != "none"]
    if noisy:
        corr = [r["correlation"] for r in noisy]
        acc = [r["accuracy"] for r in noisy]
        lines.append(
            f"- {name}, Table 1: across the {len(noisy)} layers correlation ranges "
            f"{fmt(min(corr))}-{fmt(max(corr))} and accuracy {fmt(min(acc))}-{fmt(max(acc))} "
            f"(no noise: correlation {fmt(table1[0]['correlation'])}, accuracy "
            f"{fmt(table1[0]['accuracy'])})."
        )
    return lines


def inversion_table(name: str, settings: list[dict]) -> tuple[str, list[str]]:
    # weakest to strongest, in the order attacks.inversion_models() defines them
    models = [
        k.removeprefix("reid_rate_inversion_")
        for k in settings[0]["metrics"]
        if k.startswith("reid_rate_inversion_")
    ]
    rows = [
        [label_of(s)] + [s["metrics"].get(f"reid_rate_inversion_{m}", float("nan")) for m in models]
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
            f"at most {fmt(max(over_rest))} across settings, and the next smaller network "
            f"({second}) by at most {fmt(max(over_next))} (mean {fmt(float(np.mean(over_next)))})"
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
    return md_table(["setting", *models], rows), lines
