"""Time a full `evaluate` on a data set and print its figures (goal: breast < 30 min, 2 cores).

    python bench/evaluate_full.py                 # full evaluation on breast
    python bench/evaluate_full.py --quick         # the tests' quick mode
    python bench/evaluate_full.py --dataset ckd

Runs against $MLFLOW_TRACKING_URI when set, else a throw-away SQLite store in a temporary
folder (the target classifier is trained there first, its time reported separately).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from anomigan.privacy.report import HEADLINE_METRICS as KEYS  # noqa: E402

SHORT = ("agree", "srank", "smae", "cmad", "tstr", "worst", "orcl", "orcl8", "score", "inv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="breast")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    a = ap.parse_args()

    tmp = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        tmp = tempfile.mkdtemp(prefix="evaluate-bench-")
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
    from anomigan.method.runtime import use_step_threads

    use_step_threads()  # as the `evaluate` command does
    from anomigan.mlops import tracking
    from anomigan.mlops.jobs import evaluate_job, load_or_train_target, prepare

    tracking.configure()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    start = time.perf_counter()
    with tracking.run(f"bench-target-{a.dataset}"):
        load_or_train_target(prepare(a.dataset, None), None)
    target_s = time.perf_counter() - start
    start = time.perf_counter()
    res = evaluate_job(a.dataset, quick=a.quick, steps=a.steps)
    wall = time.perf_counter() - start
    folder = tracking.download_run_artifacts(res["run_id"], "evaluation")
    results = json.loads((Path(folder) / "results.json").read_text())

    print(f"\n{a.dataset}: evaluate ({'quick' if a.quick else 'full'}) {wall:.0f} s wall "
          f"({wall / 60:.1f} min; goal < 30 min for a full run on breast), "
          f"{res['n_settings']} settings; target training {target_s:.0f} s; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"random baseline 1/N = {results['random_baseline']:.4f}; class-leak bound "
          f"{results['settings'][0]['metrics']['class_leak_bound']:.3f}")  # fmt: skip
    print(f"means over split seeds {results['split_seeds']} (± 95% interval of the worst linkage)")
    print(f"{'setting':<26}" + "".join(f"{s:>7}" for s in SHORT) + "   ±worst")
    for s in results["settings"]:
        m = s["metrics"]
        print(f"{s['name']:<26}" + "".join(f"{m.get(k, float('nan')):7.3f}" for k in KEYS)
              + f"  {m.get('reid_rate_worst_seed_ci95', float('nan')):.3f}")  # fmt: skip
    print("\nTable 1 (layer, correlation, accuracy, auc, agreement):")
    for r in results["table1"]:
        print(f"  {r['layer']:>4} {r['correlation']:.3f} {r['accuracy']:.3f} {r['auc']:.3f} "
              f"{r['prediction_agreement']:.3f}")  # fmt: skip
    t2 = results["table2"]
    print(f"Table 2: {t2['train_steps']} steps trained in {t2['train_seconds']:.0f} s; test split "
          f"anonymised in {t2['run_seconds_test_split']:.3f} s; "
          f"{t2['anonymize_rows_per_second']:.0f} rows/s")  # fmt: skip
    if tmp:
        print(f"(store: {tmp})")


if __name__ == "__main__":
    main()
