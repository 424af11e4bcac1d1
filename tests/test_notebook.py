"""notebooks/compare_runs.ipynb executed for real (nbclient) against a quick evaluation."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "compare_runs.ipynb"


def test_notebook_redraws_the_frontier(quick_evaluation, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    os.environ["ANOMIGAN_NOTEBOOK_OUT"] = str(tmp_path)
    try:
        NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.pop("ANOMIGAN_NOTEBOOK_OUT", None)
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert f"evaluate run {quick_evaluation['run_id']}: {quick_evaluation['n_settings']}" in text
    assert "class_prototype" in text and "laplace_dp" in text
    assert "class_copula" in text and "laplace_dp_guard" in text
    assert (tmp_path / "frontier_reid_rate_worst.png").stat().st_size > 10_000
