"""Pyfuncs logged before the layered layout still load: their models-from-code file (copied
into the model when it was logged) imports `anomigan.serving`."""

from __future__ import annotations

import subprocess
import sys

from anomigan.mlops import serving


def test_the_served_classes_keep_their_old_import_path() -> None:
    from anomigan.serving import EncoderModel, TargetModel

    assert EncoderModel is serving.EncoderModel and TargetModel is serving.TargetModel


def test_an_old_models_from_code_file_runs(tmp_path) -> None:
    """The entry file as pyfuncs of the flat layout carry it, run the way MLflow runs it."""
    old = tmp_path / "encoder.py"
    old.write_text(
        "import mlflow\n\nfrom anomigan.serving import EncoderModel\n\n"
        "mlflow.models.set_model(EncoderModel())\n"
    )
    code = (
        "import runpy, mlflow.models.model as m\n"
        f"runpy.run_path({str(old)!r})\n"
        "print(type(m.__mlflow_model__).__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "anomigan.mlops.serving.models"
