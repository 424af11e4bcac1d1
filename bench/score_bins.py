"""How low linkage can go at a given score rank: the score-bin copula at several bin counts,
against the class copula and the score copula, on the honest-frontier protocol.

The score-bin copula (`anomigan.method.anonymizers.ScoreBinCopula`, a reference of `evaluate`
at `SCORE_BINS` bins) releases a fresh copula record of the record's predicted class whose
target score falls in the same within-class quantile bin as the record's. The release depends
on the record only through its cell (class, bin), so no adversary links more than cells / N on
average over N equally likely candidates: its Bayes bound, printed beside each figure. The
inversion adversary links only among the N − k records it does not hold, so its bound is
cells / (N − k), printed too: the worst of the attacks can read up to that.
Every anonymiser runs behind the served prediction guard, and the figures come from the same
`evaluate` as `train`'s. Bins are to be chosen on the validation split; the test split is for
reporting.

    python bench/score_bins.py --dataset breast --seeds 0,1 --split validation --bins 2,3,4
    python bench/score_bins.py --dataset breast --seeds 0,1,2 --split test --bins 2
    python bench/score_bins.py --dataset breast --seeds 0,1 --bins 2 --n-records 16000
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from anomigan.method.anonymizers import (  # noqa: E402
    SCORE_DRAWS,
    ClassCopula,
    Guarded,
    ScoreBinCopula,
    ScoreCopula,
)
from anomigan.privacy.attacks import LINKAGE  # noqa: E402

KEYS = ("prediction_agreement", "score_rank_corr", "corr_matrix_mad", "reid_rate_worst")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="breast")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--split", default="validation", choices=("validation", "test"))
    ap.add_argument("--bins", default="2,3,4")
    ap.add_argument("--n-records", type=int, default=1000,
                    help="releases per evaluation (1000, `evaluate`'s); more read the linkage "
                    "with less sampling noise")  # fmt: skip
    a = ap.parse_args()

    from anomigan.method.target import TargetConfig
    from anomigan.mlops.prepare import prepare
    from anomigan.mlops.targets import train_split_target
    from anomigan.privacy.evaluation import AttackConfig, evaluate
    from anomigan.privacy.sweeps import aggregate

    rows: dict[str, list[dict[str, float]]] = {}
    for seed in (int(s) for s in a.seeds.split(",")):
        prep = prepare(a.dataset, None, seed)
        target = train_split_target(prep, TargetConfig())
        data = prep.eval_data(target, prep.codec).on(a.split)
        cop = ClassCopula.fit(data.x_train, target.predict, data.blocks)
        # the inversion adversary links among the records it does not hold, as in `evaluate`
        pool = len(data.x_all) - len(data.inversion_known(AttackConfig().inversion_known, seed))
        n_classes = len(cop.models) - 1
        refs: dict[str, object] = {
            "class_copula": cop,
            f"score_copula {SCORE_DRAWS}": ScoreCopula(cop, target.predict_proba, SCORE_DRAWS),
        }
        for b in (int(s) for s in a.bins.split(",")):
            refs[f"score_bin_copula {b}"] = ScoreBinCopula.fit(
                cop, target.predict_proba, data.x_train, b
            )
        for name, ref in refs.items():
            m = evaluate(Guarded(ref, target.predict), data, target.predict_proba, a.n_records,
                         seed=seed, throughput_rows=0)  # fmt: skip
            row = {k: round(m[k], 4) for k in KEYS}
            row.update({k: round(m[k], 4) for k in LINKAGE})  # which attack sets the worst
            if isinstance(ref, ScoreBinCopula | ClassCopula):  # the score copula has none
                cells = n_classes * (ref.bins if isinstance(ref, ScoreBinCopula) else 1)
                row["bayes_bound"] = round(cells / len(data.x_all), 4)
                row["bayes_bound_inversion"] = round(cells / pool, 4)
            if isinstance(ref, ScoreBinCopula):
                row["fallback_share"] = round(ref.fallbacks / max(ref.released, 1), 5)
            rows.setdefault(name, []).append(row)
            print(json.dumps({"seed": seed, "split": a.split, "n_records": a.n_records,
                              "anonymizer": name, **row}), flush=True)  # fmt: skip
    for name, per_seed in rows.items():  # mean and t-interval over splits, as `evaluate`'s
        agg = aggregate(per_seed)
        means = {k: round(agg[k], 5 if k == "fallback_share" else 4) for k in per_seed[0]}
        half = round(agg["reid_rate_worst_seed_ci95"], 4)
        print(json.dumps({"mean_over_seeds": name, **means, "worst_seed_ci95": half}))


if __name__ == "__main__":
    main()
