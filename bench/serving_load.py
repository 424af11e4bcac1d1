"""Serving under load: concurrent clients against `mlflow models serve` of a registered encoder.

8 clients (threads, one HTTP session each) send 2,000 requests of 1-100 synthetic records (half
of them single-record, the rest uniform in 1-100), stopping early at 60 s; prints p50/p99 per
request size, errors (non-200 answers, 5xx, failed connections) and whether the server still
answers. Goal: 0 errors, p99 <= 5x p50 for single-record requests. Records are synthetic
(random points of model space, decoded), never patient rows.

    .venv/bin/python bench/serving_load.py [--model models:/anomigan-encoder-breast@champion]
        [--clients 8] [--requests 2000] [--max-seconds 60] [--server-workers 1]

Without `--tracking-uri`/`MLFLOW_TRACKING_URI` it works in a temporary store and trains an
encoder with `train`'s defaults first. `tests/mlops/test_serving_load.py` runs `load` shorter.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import requests

#: Request-size groups reported separately (inclusive bounds).
SIZE_GROUPS = ((1, 1), (2, 10), (11, 50), (51, 100))


@dataclass
class LoadResult:
    """Per request: its size, latency (s) and HTTP status (0: no answer)."""

    sizes: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    wall_s: float = 0.0

    def errors(self) -> int:
        return sum(s != 200 for s in self.statuses)

    def server_errors(self) -> int:
        """5xx answers and requests that got no answer at all."""
        return sum(s >= 500 or s == 0 for s in self.statuses)

    def summary(self, lo: int = 1, hi: int = 10**9) -> dict[str, float]:
        took = [t for n, t in zip(self.sizes, self.seconds, strict=True) if lo <= n <= hi]
        if not took:
            return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan")}
        return {
            "n": len(took),
            "p50_ms": 1e3 * float(np.percentile(took, 50)),
            "p99_ms": 1e3 * float(np.percentile(took, 99)),
        }


def request_sizes(n: int, max_records: int, seed: int) -> list[int]:
    """Half single-record requests (so their p99 rests on enough samples), half 1-max."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_records + 1, size=n)
    sizes[rng.random(n) < 0.5] = 1
    return [int(s) for s in sizes]


def body(frame: pd.DataFrame) -> str:
    return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))})


def load(
    url: str,
    records: pd.DataFrame,
    clients: int,
    n_requests: int,
    max_seconds: float,
    max_records: int = 100,
    seed: int = 0,
) -> LoadResult:
    """`n_requests` POSTs to `url`/invocations from `clients` threads, none started after
    `max_seconds`. Bodies are built first, so the clients spend their time waiting."""
    sizes = request_sizes(n_requests, max_records, seed)
    rng = np.random.default_rng(seed + 1)
    starts = rng.integers(0, len(records) - max_records, size=n_requests)
    bodies = [
        body(records.iloc[s : s + n].reset_index(drop=True))
        for s, n in zip(starts, sizes, strict=True)
    ]
    result = LoadResult()
    lock = threading.Lock()
    next_index = iter(range(n_requests))
    start = time.monotonic()
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        session = requests.Session()
        while time.monotonic() - start < max_seconds:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            t = time.perf_counter()
            try:
                status = session.post(
                    f"{url}/invocations", data=bodies[i], headers=headers, timeout=60
                ).status_code
            except requests.RequestException:
                status = 0
            took = time.perf_counter() - t
            with lock:
                result.sizes.append(sizes[i])
                result.seconds.append(took)
                result.statuses.append(status)

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    result.wall_s = time.monotonic() - start
    return result


def still_answers(url: str, records: pd.DataFrame) -> bool:
    """/ping and one single-record request both answer 200 after the load."""
    try:
        ping = requests.get(f"{url}/ping", timeout=10).status_code
        one = requests.post(
            f"{url}/invocations",
            data=body(records.iloc[:1]),
            headers={"Content-Type": "application/json"},
            timeout=30,
        ).status_code
    except requests.RequestException:
        return False
    return ping == one == 200


def report(result: LoadResult) -> list[str]:
    lines = [
        f"{len(result.statuses)} requests in {result.wall_s:.1f} s "
        f"({len(result.statuses) / max(result.wall_s, 1e-9):.1f} requests/s); errors "
        f"{result.errors()} (5xx or no answer: {result.server_errors()})"
    ]
    overall = result.summary()
    lines.append(
        f"all sizes     n={overall['n']:5d} p50 {overall['p50_ms']:8.1f} ms "
        f"p99 {overall['p99_ms']:8.1f} ms"
    )
    for lo, hi in SIZE_GROUPS:
        s = result.summary(lo, hi)
        label = f"{lo} record" if lo == hi else f"{lo}-{hi} records"
        lines.append(
            f"{label:13s} n={s['n']:5d} p50 {s['p50_ms']:8.1f} ms p99 {s['p99_ms']:8.1f} ms"
        )
    single = result.summary(1, 1)
    ratio = single["p99_ms"] / single["p50_ms"]
    lines.append(f"single-record p99/p50: {ratio:.2f}x (goal <= 5x); errors goal 0")
    return lines


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import mlflow
    from _store import store_with_encoder
    from serving_latency import serve, stop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/anomigan-encoder-breast@champion")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--max-records", type=int, default=100)
    parser.add_argument("--server-workers", type=int, default=1)
    args = parser.parse_args()

    work, _ = store_with_encoder(args.model, args.tracking_uri)
    codec = mlflow.pyfunc.load_model(args.model).unwrap_python_model().codec
    z = np.random.default_rng(0).uniform(0, 1, size=(2_000, codec.n_outputs))
    records = codec.decode(z.astype("float32"))  # synthetic records of the model's shape

    proc, url = serve(args.model, work / "load-server.log", workers=args.server_workers)
    try:
        load(url, records, args.clients, 40, 30.0, args.max_records, seed=99)  # warm-up
        result = load(url, records, args.clients, args.requests, args.max_seconds, args.max_records)
        alive = still_answers(url, records)
    finally:
        stop(proc)
    print(
        f"{args.model}, {args.clients} clients, server workers {args.server_workers}, "
        f"{os.cpu_count()} CPUs"
    )
    for line in report(result):
        print(line)
    print(f"server still answering after the load: {'yes' if alive else 'NO'}")


if __name__ == "__main__":
    main()
