"""No raw patient row in the MLflow store: params, tags, metrics, input examples, artifacts."""

from __future__ import annotations

from support import find_leaked_rows

from anomigan.data import load_dataset


def test_scanner_finds_a_planted_row(tmp_path):
    ds = load_dataset("breast")
    (tmp_path / "leak.json").write_text(ds.features.iloc[[5]].to_json(orient="split"))
    assert find_leaked_rows(tmp_path, ds.features) == [f"row 5 in {tmp_path / 'leak.json'}"]
    (tmp_path / "leak.json").write_text(ds.features.iloc[[5]].to_csv(index=False))
    assert find_leaked_rows(tmp_path, ds.features)


def test_store_holds_no_breast_row_after_training(breast_target, breast_encoder, mlflow_store):
    """After a target and an encoder run: params, tags, metrics, input examples, artifacts."""
    ds = load_dataset("breast")
    assert find_leaked_rows(mlflow_store, ds.features) == []
