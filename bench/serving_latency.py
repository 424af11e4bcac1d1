"""Serving speed: the encoder vs a trivial pyfunc, both behind `mlflow models serve`.

Prints the median single-record latency of each (after warm-up), their ratio (goal: encoder
within 1.25x of the trivial model) and the time of one 10,000-record request (goal < 1 s).
Records are synthetic (random points of model space, decoded), never patient rows.

    .venv/bin/python bench/serving_latency.py [--model models:/anomigan-encoder-breast@champion]

Without `--tracking-uri`/`MLFLOW_TRACKING_URI` it works in a temporary store and trains an
encoder with `train`'s defaults first.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402
from _store import store_with_encoder  # noqa: E402


class Identity(mlflow.pyfunc.PythonModel):
    """The trivial baseline: returns its input."""

    def predict(self, context, model_input, params=None):
        return model_input


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(model_uri: str, log: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    """`mlflow models serve` on 127.0.0.1 (one worker unless told), waited for until /ping
    answers."""
    port = _free_port()
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise TimeoutError("server did not answer /ping")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def measure(urls: dict[str, str], records: pd.DataFrame, n: int, warmup: int) -> dict:
    """Per server: median single-record latency over n requests, and the median time of three
    10,000-record requests. Requests alternate between the servers (A B, B A, ...) so that
    load from other processes on a shared machine hits both alike."""
    sessions = {label: requests.Session() for label in urls}
    headers = {"Content-Type": "application/json"}

    def body(frame: pd.DataFrame) -> str:
        return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))})

    def post(label: str, data: str) -> float:
        t = time.perf_counter()
        response = sessions[label].post(f"{urls[label]}/invocations", data=data, headers=headers)
        took = time.perf_counter() - t
        assert response.ok, response.text[:300]
        return took

    singles = [body(records.iloc[[i % 100]].reset_index(drop=True)) for i in range(n)]
    labels = list(urls)
    for data in singles[:warmup]:
        for label in labels:
            post(label, data)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for i, data in enumerate(singles):
        for label in labels if i % 2 == 0 else labels[::-1]:
            times[label].append(post(label, data))
    big = body(records.iloc[:10_000])
    big_times: dict[str, list[float]] = {label: [] for label in labels}
    for i in range(3):
        for label in labels if i % 2 == 0 else labels[::-1]:
            big_times[label].append(post(label, big))
    return {
        label: {
            "single_median_ms": 1e3 * statistics.median(times[label]),
            "single_p90_ms": 1e3 * float(np.percentile(times[label], 90)),
            "batch10k_s": statistics.median(big_times[label]),
        }
        for label in labels
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/anomigan-encoder-breast@champion")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()

    work, uri = store_with_encoder(args.model, args.tracking_uri)

    codec = mlflow.pyfunc.load_model(args.model).unwrap_python_model().codec
    z = np.random.default_rng(0).uniform(0, 1, size=(10_000, codec.n_outputs))
    records = codec.decode(z.astype("float32"))  # synthetic records of the model's shape

    identity = work / "identity-model"  # a local folder: nothing is logged to the store
    mlflow.pyfunc.save_model(str(identity), python_model=Identity())
    procs: dict[str, subprocess.Popen] = {}
    urls: dict[str, str] = {}
    try:
        for label, model_uri in (("trivial", str(identity)), ("encoder", args.model)):
            procs[label], urls[label] = serve(model_uri, work / f"{label}.log")
        results = measure(urls, records, args.requests, args.warmup)
    finally:
        for proc in procs.values():
            stop(proc)
    for label, r in results.items():
        print(
            f"{label:8s} single record: median {r['single_median_ms']:.2f} ms "
            f"(p90 {r['single_p90_ms']:.2f} ms); one 10,000-record request: "
            f"{r['batch10k_s']:.3f} s"
        )
    ratio = results["encoder"]["single_median_ms"] / results["trivial"]["single_median_ms"]
    print(f"ratio encoder/trivial (single-record median): {ratio:.2f}x (goal <= 1.25x)")
    big = results["encoder"]["batch10k_s"]
    print(f"encoder 10,000 records in one request: {big:.3f} s (goal < 1 s)")


if __name__ == "__main__":
    main()
