"""tracking's downloads live in temporary folders that go away with the process."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import mlflow
from anomigan.mlops import tracking
mlflow.set_tracking_uri(sys.argv[1])
with mlflow.start_run() as run:
    mlflow.log_text("no rows here", "evaluation/results.json")
folder = tracking.download_run_artifacts(run.info.run_id, "evaluation")
assert (folder / "results.json").read_text() == "no rows here"
print(folder)
"""


def test_downloaded_artifacts_are_removed_at_exit(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # a fresh store
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, store], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.name == "evaluation" and folder.parent.name.startswith("anomigan-")
    assert not folder.parent.exists()
