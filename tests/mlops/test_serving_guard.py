"""The scoring server guard, end to end on the real `mlflow models serve`.

Bad requests carry a recognisable marker value; no response body may contain it, every answer
is a 4xx naming the problem, and the server keeps serving afterwards.
"""

from __future__ import annotations

import json

import pytest
import requests

from anomigan.data import load_dataset

MARKER = "987654.321"


def _records(n: int = 2) -> list[dict]:
    frame = load_dataset("breast").features.iloc[:n]
    return json.loads(frame.to_json(orient="records"))


def _post(server, body, content_type="application/json"):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return requests.post(
        f"{server.url}/invocations", data=data, headers={"Content-Type": content_type}, timeout=60
    )


def test_good_request_split_and_records(target_server):
    records = _records(3)
    columns = list(records[0])
    split = {"dataframe_split": {"columns": columns, "data": [list(r.values()) for r in records]}}
    for body in (split, {"dataframe_records": records}):
        response = _post(target_server, body)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == 3
        assert {"prediction", "proba_benign", "proba_malignant"} <= set(predictions[0])


def _bad_requests():
    records = _records(2)
    missing = [{k: v for k, v in r.items() if k != "mean radius"} for r in records]
    extra = [dict(r, secret_column=float(MARKER)) for r in records]
    text = [dict(r) for r in records]
    text[1]["mean texture"] = f"abc{MARKER}"
    null = [dict(r) for r in records]
    null[0] = {k: None for k in null[0]}
    marked = [dict(r, **{"mean area": float(MARKER)}) for r in records]
    return {
        "missing-column": ({"dataframe_records": missing}, "application/json", "mean radius"),
        "extra-column": ({"dataframe_records": extra}, "application/json", "secret_column"),
        "string-in-number": ({"dataframe_records": text}, "application/json", "mean texture"),
        "all-null-record": ({"dataframe_records": null}, "application/json", "row"),
        "empty-body": ("", "application/json", "empty"),
        "not-json": ("{'x': " + MARKER, "application/json", "JSON"),
        "wrong-key": ({"rows": marked}, "application/json", "dataframe_split"),
        "zero-rows": (
            {"dataframe_split": {"columns": list(records[0]), "data": []}},
            "application/json",
            "no records",
        ),
        "text-plain": (json.dumps({"dataframe_records": marked}), "text/plain", "content type"),
        "bad-csv": (f'a,b\n"{MARKER},1\n', "text/csv", ""),
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
def test_bad_request_is_4xx_value_free_and_server_survives(target_server, case):
    body, content_type, expected = _bad_requests()[case]
    response = _post(target_server, body, content_type)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert MARKER not in response.text
    assert "Traceback" not in response.text and "stack_trace" not in response.text
    for record in _records(2):  # no submitted patient value comes back either
        assert str(record["mean area"]) not in response.text
    assert expected in response.json()["message"]
    assert requests.get(f"{target_server.url}/ping", timeout=5).status_code == 200
    assert _post(target_server, {"dataframe_records": _records(1)}).status_code == 200
