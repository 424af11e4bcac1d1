"""Helpers the tests share (conftest.py holds the fixtures): the leak scanner, a free port, a
real `mlflow models serve` process, the tuning kill/resume contract and a `bench/` script as
a module.

A module of its own, not conftest: every folder of tests may have a conftest.py, and
`from conftest import ...` would find whichever was imported last.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType


def _numeric_tokens(text: str) -> set[str]:
    import re

    return {t.lstrip("+") for t in re.findall(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?|[-+]?\d+", text)}


def _distinctive(value) -> str | None:
    """A cell as it would be written to JSON/CSV, if it is specific enough to fingerprint a row."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    digits = sum(c.isdigit() for c in text.lstrip("-0."))
    return text if digits >= 3 else None


def find_leaked_rows(root: Path, frame) -> list[str]:
    """Scan every text file and the SQLite store under `root` for raw rows of `frame`.

    A row counts as leaked from a file when at least half of its distinctive values (three or
    more significant digits) appear there. Column aggregates (one min or max per column) in
    the codec never reach that share for any single row.
    """
    import sqlite3

    texts: dict[str, str] = {}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".db":
            con = sqlite3.connect(path)
            rows = []
            for (table,) in con.execute("select name from sqlite_master where type='table'"):
                rows += [" ".join(map(str, r)) for r in con.execute(f"select * from [{table}]")]
            con.close()
            texts[str(path)] = "\n".join(rows)
            continue
        try:
            texts[str(path)] = path.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary weights: no row is stored in a network's parameters as text
    tokens = {name: _numeric_tokens(text) for name, text in texts.items()}
    leaks = []
    numeric = frame.select_dtypes("number")
    for i, row in enumerate(numeric.itertuples(index=False)):
        cells = {c for c in (_distinctive(v) for v in row) if c is not None}
        if len(cells) < 4:
            continue
        for name, found in tokens.items():
            if len(cells & found) >= len(cells) / 2:
                leaks.append(f"row {i} in {name}")
    return leaks


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScoringServer:
    """`mlflow models serve` on 127.0.0.1 and a free port, stopped by its process id."""

    def __init__(self, model_uri: str, env: dict[str, str], log_path: Path):

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [
            str(Path(sys.executable).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-w",
            "1",
        ]
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, timeout: float = 120) -> None:
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"no /ping answer in {timeout} s: {self.log_path.read_text()[-2000:]}")

    def __enter__(self) -> ScoringServer:
        try:
            self.wait()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, TimeoutError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def assert_trials_land_once(study, n_trials: int) -> dict[int, object]:
    """The kill/resume contract, checked on the study and the tracking store: `n_trials`
    finished trials and none RUNNING; each finished trial has exactly one MLflow run and it is
    FINISHED; every other run of the study (failed trials, killed tunes) is ended, none left
    RUNNING. Returns the finished trials' runs by trial number."""
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    client = MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        ids, filter_string=f"tags.optuna_study = '{study.study_name}'", max_results=10_000
    )
    by_trial: dict[int, list] = {}
    for run in runs:
        assert run.info.status != "RUNNING", f"run {run.info.run_name} was left RUNNING"
        if "optuna_trial_number" in run.data.tags:
            by_trial.setdefault(int(run.data.tags["optuna_trial_number"]), []).append(run)
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states, states
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n_trials, states
    out = {}
    for t in trials:
        statuses = [r.info.status for r in by_trial.get(t.number, [])]
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            assert statuses == ["FINISHED"], (t.number, t.state, statuses)
            (out[t.number],) = by_trial[t.number]
            recorded = t.user_attrs.get("mlflow_run_id")
            assert recorded == out[t.number].info.run_id, (t.number, recorded)
        else:  # a dead or failed trial: at most one run, ended KILLED or FAILED (or FINISHED
            # and tagged FAIL: the trial ran to the end but an objective was not a number)
            assert t.state == TrialState.FAIL, (t.number, t.state)
            tags = [r.data.tags.get("optuna_state") for r in by_trial.get(t.number, [])]
            assert statuses in ([], ["KILLED"], ["FAILED"]) or (
                statuses == ["FINISHED"] and tags == ["FAIL"]
            ), (t.number, statuses)
    return out


def load_bench(name: str) -> ModuleType:
    """`bench/<name>.py` imported as a module (bench/ is scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
