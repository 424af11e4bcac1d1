"""The encoder's scoring server under concurrent clients: a short run of
`bench/serving_load.py` against the real `mlflow models serve`. No timing assertions (those are
the benchmark's figures): every request gets a 200, none a 5xx, and the server still answers.
"""

from __future__ import annotations

import mlflow
import numpy as np
from support import load_bench


def test_concurrent_clients_get_no_5xx_and_the_server_keeps_answering(encoder_server):
    bench = load_bench("serving_load")
    model = mlflow.pyfunc.load_model("models:/anomigan-encoder-breast@champion")
    codec = model.unwrap_python_model().codec
    z = np.random.default_rng(0).uniform(0, 1, size=(300, codec.n_outputs)).astype("float32")
    records = codec.decode(z)

    result = bench.load(encoder_server.url, records, clients=4, n_requests=100, max_seconds=120)
    assert len(result.statuses) == 100  # all sent within the limit
    assert result.server_errors() == 0, sorted(set(result.statuses))
    assert result.errors() == 0, sorted(set(result.statuses))
    assert sorted(set(result.sizes)) != [1]  # single- and multi-record requests both
    assert bench.still_answers(encoder_server.url, records)
