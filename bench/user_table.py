"""Write a mixed-type patient-like table with missing values, to run anomigan on a user CSV.

Four correlated numeric columns (one integer), two categorical columns, about 8 % of cells
missing, and a binary outcome that depends on them; nothing in it is a real record.

    python bench/user_table.py /tmp/user.csv [--rows 800] [--seed 0]
    anomigan train --dataset /tmp/user.csv --label outcome
    anomigan evaluate --dataset /tmp/user.csv --label outcome --n-seeds 3
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def make_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.6, 0.3, -0.2], [0.6, 1.0, 0.4, 0.0], [0.3, 0.4, 1.0, 0.5],
                    [-0.2, 0.0, 0.5, 1.0]])  # fmt: skip
    z = rng.multivariate_normal(np.zeros(4), cov, size=rows)
    smoker = rng.choice(["never", "former", "current"], size=rows, p=[0.5, 0.3, 0.2])
    site = rng.choice(["north", "south"], size=rows)
    risk = z[:, 0] + 0.8 * z[:, 2] + 0.7 * (smoker == "current") - 0.3 * (site == "south")
    outcome = np.where(risk + rng.normal(0, 0.7, rows) > 0.4, "disease", "healthy")
    table = pd.DataFrame(
        {
            "age": np.clip(np.round(55 + 12 * z[:, 0]), 18, 95).astype(int),
            "bmi": np.round(27 + 4 * z[:, 1], 1),
            "glucose": np.round(100 + 25 * z[:, 2], 1),
            "crp": np.round(np.exp(1 + 0.6 * z[:, 3]), 2),
            "smoker": smoker,
            "site": site,
        }
    )
    for col in ("bmi", "glucose", "crp", "smoker"):
        table.loc[rng.random(rows) < 0.08, col] = None
    table["outcome"] = outcome
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--rows", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    make_table(a.rows, a.seed).to_csv(a.path, index=False)
    print(f"wrote {a.rows} rows to {a.path}")


if __name__ == "__main__":
    main()
