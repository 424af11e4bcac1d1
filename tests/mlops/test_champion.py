"""The promotion policy on its own: which Pareto trial `tune` promotes, and why none."""

from __future__ import annotations

from anomigan.mlops.tuning import choose_champion

PRIVACY = "reid_rate_worst"


def row(n: int, agree: float, worst: float, mad: float, pareto: bool = True) -> dict:
    return {"trial_number": n, "prediction_agreement": agree, PRIVACY: worst,
            "corr_matrix_mad": mad, "pareto": pareto}  # fmt: skip


def chosen(rows: list[dict], min_agreement: float = 0.95, max_corr_mad: float = 0.25) -> int:
    best, _ = choose_champion(rows, PRIVACY, min_agreement, max_corr_mad)
    return -1 if best is None else best["trial_number"]


def test_both_bars_exclude_and_the_lowest_privacy_figure_wins() -> None:
    rows = [
        row(0, 0.99, 0.01, 0.30),  # fails the corr bar (the most private: excluded)
        row(1, 0.90, 0.00, 0.10),  # fails the agreement bar
        row(2, 0.97, 0.05, 0.20),
        row(3, 0.96, 0.04, 0.22),  # lowest privacy figure among those that pass
        row(4, 0.99, 0.00, 0.10, pareto=False),  # off the front: never considered
    ]
    best, reason = choose_champion(rows, PRIVACY, 0.95, 0.25)
    assert best is not None and best["trial_number"] == 3
    assert reason.startswith("trial 3 has the lowest reid_rate_worst (0.040) of the 2 Pareto")


def test_the_bars_are_inclusive() -> None:
    assert chosen([row(0, 0.95, 0.02, 0.25), row(1, 0.99, 0.03, 0.10)]) == 0
    assert chosen([row(0, 0.9499, 0.02, 0.25), row(1, 0.99, 0.03, 0.10)]) == 1
    assert chosen([row(0, 0.95, 0.02, 0.2501), row(1, 0.99, 0.03, 0.10)]) == 1


def test_ties_break_on_agreement_then_corr_mad_then_the_earlier_trial() -> None:
    assert chosen([row(0, 0.97, 0.04, 0.20), row(1, 0.99, 0.04, 0.20)]) == 1
    assert chosen([row(0, 0.99, 0.04, 0.20), row(1, 0.99, 0.04, 0.15)]) == 1
    assert chosen([row(5, 0.99, 0.04, 0.15), row(2, 0.99, 0.04, 0.15)]) == 2


def test_no_champion_says_why() -> None:
    best, why = choose_champion([], PRIVACY, 0.95, 0.25)
    assert best is None and why == "no trial completed, so the study has no Pareto front"
    best, why = choose_champion([row(0, 0.99, 0.0, 0.1, pareto=False)], PRIVACY, 0.95, 0.25)
    assert best is None and "no Pareto front" in why
    best, why = choose_champion([row(0, 0.93, 0.02, 0.31), row(1, 0.94, 0.03, 0.28)],
                                PRIVACY, 0.95, 0.25)  # fmt: skip
    assert best is None
    assert why == (
        "no Pareto trial has prediction_agreement >= 0.95 and corr_matrix_mad <= 0.25 "
        "(best agreement 0.940, lowest corr_matrix_mad 0.280 among 2 Pareto trials)"
    )
