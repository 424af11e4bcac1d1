"""The AnomiGAN encoder end to end on the real `mlflow models serve`.

Good requests come back as complete records of the same shape and types, freshly randomised on
every call; bad requests get a 4xx naming the problem and never a submitted value; the server
keeps serving. A second, mixed-type data set (ints, floats, categories) checks the types.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import requests
from support import ScoringServer

from anomigan.data import load_dataset
from anomigan.data.codec import RecordCodec

MARKER = 987654.321
MARKER_TEXT = "987654.321"


def _breast_records(n: int = 3) -> list[dict]:
    frame = load_dataset("breast").features.iloc[10 : 10 + n]
    return json.loads(frame.to_json(orient="records"))


def _post(server, body, content_type: str | None = "application/json") -> requests.Response:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {} if content_type is None else {"Content-Type": content_type}
    return requests.post(f"{server.url}/invocations", data=data, headers=headers, timeout=60)


def _split(records: list[dict]) -> dict:
    columns = list(records[0])
    return {"dataframe_split": {"columns": columns, "data": [list(r.values()) for r in records]}}


def _predictions(response: requests.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def _codec(model_uri: str) -> RecordCodec:
    from anomigan.mlops import tracking

    return RecordCodec.load(tracking.download_model_artifacts(model_uri, "model") / "codec.json")


def _check_like_input(predictions: list[dict], records: list[dict], codec: RecordCodec) -> None:
    """Same columns in the same order, the fitted types, values inside the training range."""
    assert len(predictions) == len(records)
    for out in predictions:
        assert list(out) == list(records[0])
        for spec in codec.specs:
            value = out[spec.name]
            if spec.kind == "categorical":
                assert value in spec.vocabulary, spec.name
            elif pd.api.types.is_integer_dtype(np.dtype(spec.dtype)):
                assert isinstance(value, int) and not isinstance(value, bool), spec.name
                assert spec.min <= value <= spec.max, spec.name
            else:
                assert isinstance(value, float), spec.name
                assert spec.min - 1e-9 <= value <= spec.max + 1e-9, spec.name


# ------------------------------------------------------------------------------ good requests


def test_split_and_records_answers_match_the_input(encoder_server):
    records = _breast_records(4)
    codec = _codec("models:/anomigan-encoder-breast@champion")
    for body in (_split(records), {"dataframe_records": records}):
        response = _post(encoder_server, body)
        predictions = _predictions(response)
        _check_like_input(predictions, records, codec)
        changed = [out != rec for out, rec in zip(predictions, records, strict=True)]
        assert all(changed)
        # numbers come back with the training data's decimals
        # (17.99, never 17.989999999999998 or float32 noise)
        for spec in codec.specs:
            if spec.kind == "numeric" and spec.decimals >= 0:
                for out in predictions:
                    assert round(out[spec.name], spec.decimals) == out[spec.name], spec.name
        assert not re.search(r"\d\.\d{9,}", response.text)


def test_same_record_twice_comes_back_different(encoder_server):
    body = {"dataframe_records": _breast_records(1)}
    first = _predictions(_post(encoder_server, body))
    second = _predictions(_post(encoder_server, body))
    assert first != second


def test_seed_makes_one_call_reproducible(encoder_server):
    records = _breast_records(2)
    seeded = {"dataframe_records": records, "params": {"seed": 7}}
    first = _predictions(_post(encoder_server, seeded))
    assert _predictions(_post(encoder_server, seeded)) == first
    other = _predictions(_post(encoder_server, {**seeded, "params": {"seed": 8}}))
    assert other != first


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"seed": "7"}, "params.seed"),
        ({"seed": -1}, "params.seed"),
        ({"seed": True}, "params.seed"),
        ({"seed": 1.5}, "params.seed"),
        ({"seed": 2**64}, "params.seed"),
        ({"temperature": MARKER}, "accepts ['seed']"),
        ([MARKER], "'params' must be a JSON object"),
    ],
)
def test_bad_params_are_refused(encoder_server, params, expected):
    response = _post(encoder_server, {"dataframe_records": _breast_records(1), "params": params})
    assert response.status_code == 400, response.text
    assert expected in response.json()["message"]
    assert MARKER_TEXT not in response.text


def test_fresh_process_loads_a_version_and_predicts(breast_encoder, cli_env, tmp_path):
    uri = f"models:/anomigan-encoder-breast/{breast_encoder['version']}"
    script = (
        "import sys, json, mlflow, numpy as np\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "codec = model.unwrap_python_model().codec\n"
        "z = np.random.default_rng(3).uniform(0.2, 0.8, size=(5, codec.n_outputs))\n"
        "records = codec.decode(z.astype('float32'))\n"
        "out = model.predict(records)\n"
        "print(json.dumps({'shape': list(out.shape), 'same_columns': list(out.columns) =="
        " list(records.columns), 'changed': bool((out.to_numpy() != records.to_numpy()).any()),"
        " 'dtypes': sorted(set(map(str, out.dtypes)))}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, uri],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "shape": [5, 30],
        "same_columns": True,
        "changed": True,
        "dtypes": ["float64"],
    }


# ------------------------------------------------------------------------------ bad requests


def _bad_requests() -> dict[str, tuple[object, str | None, int, str]]:
    """name -> (body, content type, status, words the message must contain)."""
    records = _breast_records(3)
    marked = [dict(r, **{"mean area": MARKER}) for r in records]
    missing = [{k: v for k, v in r.items() if k != "mean radius"} for r in marked]
    extra = [dict(r, extra_column=MARKER) for r in marked]
    text = [dict(r) for r in marked]
    text[1]["mean texture"] = f"abc{MARKER_TEXT}"
    null = [dict(r) for r in marked]
    null[2]["worst area"] = None
    split = _split(marked)
    ragged = json.loads(json.dumps(split))
    ragged["dataframe_split"]["data"][1] = ragged["dataframe_split"]["data"][1][:-1]
    over = {"dataframe_split": {"columns": list(records[0]), "data": [[1.0] * 30] * 5001}}
    over["dataframe_split"]["data"][0] = [MARKER] * 30
    return {
        "missing-column": ({"dataframe_records": missing}, "application/json", 400, "mean radius"),
        "extra-column": ({"dataframe_records": extra}, "application/json", 400, "extra_column"),
        "string-for-number": (
            {"dataframe_records": text},
            "application/json",
            400,
            "column 'mean texture' is numeric but has non-numeric values in rows [1]",
        ),
        "null-for-number": (
            {"dataframe_records": null},
            "application/json",
            400,
            "column 'worst area' has missing (null or empty) values in rows [2]",
        ),
        "ragged-split": (ragged, "application/json", 400, "row 1 has 29 values"),
        "empty-body": ("", "application/json", 400, "empty request body"),
        "not-json": ("{'dataframe_records': [" + MARKER_TEXT, "application/json", 400, "JSON"),
        "wrong-key": ({"records": marked}, "application/json", 400, "dataframe_split"),
        "extra-top-key": (
            {**split, "comment": MARKER_TEXT},
            "application/json",
            400,
            "unexpected key",
        ),
        "zero-rows": (
            {"dataframe_split": {"columns": list(records[0]), "data": []}},
            "application/json",
            400,
            "no records",
        ),
        "text-plain": (json.dumps(split), "text/plain", 415, "content type"),
        "no-content-type": (json.dumps(split), None, 415, "content type"),
        "bad-csv-value": (
            pd.DataFrame(text).to_csv(index=False),
            "text/csv",
            400,
            "mean texture",
        ),
        "over-row-limit": (over, "application/json", 413, "5001 records exceed the limit of 5000"),
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
def test_bad_request_is_4xx_value_free_and_server_survives(encoder_server, case):
    body, content_type, status, expected = _bad_requests()[case]
    response = _post(encoder_server, body, content_type)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert MARKER_TEXT not in response.text
    assert "Traceback" not in response.text and "stack_trace" not in response.text
    for record in _breast_records(3):  # no submitted patient value comes back either
        for value in record.values():
            if len(str(value)) >= 5:
                assert str(value) not in response.text
    assert expected in response.json()["message"]
    assert requests.get(f"{encoder_server.url}/ping", timeout=5).status_code == 200
    assert _post(encoder_server, {"dataframe_records": _breast_records(1)}).status_code == 200


def test_body_over_the_byte_limit_is_413(breast_encoder, cli_env, tmp_path):
    """ANOMIGAN_MAX_BODY_BYTES refuses a large body before it is parsed."""
    env = {**cli_env, "ANOMIGAN_MAX_BODY_BYTES": "100000"}
    uri = "models:/anomigan-encoder-breast@champion"
    with ScoringServer(uri, env, tmp_path / "s.log") as server:
        body = json.dumps({"dataframe_records": _breast_records(1)}) + " " * 100_001
        response = _post(server, body)
        assert response.status_code == 413, response.text
        assert "exceeds the limit of 100000 bytes" in response.json()["message"]
        assert _post(server, {"dataframe_records": _breast_records(1)}).status_code == 200
        # seeds are off unless ANOMIGAN_ALLOW_SEED is set
        seeded = {"dataframe_records": _breast_records(1), "params": {"seed": 1}}
        response = _post(server, seeded)
        assert response.status_code == 400 and "ANOMIGAN_ALLOW_SEED" in response.text


# ------------------------------------------------------------------ mixed types: ints, categories


@pytest.fixture(scope="module")
def mixed_server(breast_target, cli_env, tmp_path_factory):
    """An encoder of complete CKD rows saved as CSV: int, float and categorical columns."""
    from anomigan.mlops.jobs import train_job

    ckd = load_dataset("ckd")
    complete = ckd.features.dropna().copy()
    complete["class"] = ckd.labels[complete.index]
    path = tmp_path_factory.mktemp("mixed") / "ckdmixed.csv"
    complete.to_csv(path, index=False)
    trained = train_job(str(path), label="class", steps=200)
    log = tmp_path_factory.mktemp("serve") / "mixed.log"
    with ScoringServer("models:/anomigan-encoder-ckdmixed@champion", cli_env, log) as server:
        server.run_id = trained["run_id"]
        server.records = json.loads(
            load_dataset(str(path), label="class").features.iloc[:4].to_json(orient="records")
        )
        yield server


def test_the_card_of_a_csv_encoder_reproduces_it_with_its_label(mixed_server):
    """The card's command names the label column and every GANConfig field as `train` takes
    them, so the version can be trained again from it."""
    import shlex
    from dataclasses import fields

    import mlflow

    from anomigan.cli import build_parser
    from anomigan.method.gan import GANConfig

    card = mlflow.artifacts.load_text(f"runs:/{mixed_server.run_id}/model_card.md")
    command = card.split("**Reproduce.** `", 1)[1].split("`", 1)[0]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.label == "class" and args.steps == 200
    given = {f.name: getattr(args, f.name) for f in fields(GANConfig) if f.name != "log_every"}
    assert GANConfig(**{**given, "seed": None}) == GANConfig(steps=200)


def test_mixed_types_come_back_as_ints_floats_and_valid_categories(mixed_server):
    codec = _codec("models:/anomigan-encoder-ckdmixed@champion")
    kinds = {s.dtype for s in codec.specs}
    assert "int64" in kinds and "float64" in kinds and any(s.vocabulary for s in codec.specs)
    records = mixed_server.records
    for body in (_split(records), {"dataframe_records": records}):
        _check_like_input(_predictions(_post(mixed_server, body)), records, codec)


def test_unknown_category_is_refused_without_echo(mixed_server):
    records = [dict(r) for r in mixed_server.records]
    records[3]["rbc"] = f"x{MARKER_TEXT}"
    response = _post(mixed_server, {"dataframe_records": records})
    assert response.status_code == 400, response.text
    assert "column 'rbc' has categories not seen in training in rows [3]" in response.text
    assert MARKER_TEXT not in response.text
    assert _post(mixed_server, {"dataframe_records": mixed_server.records}).status_code == 200
