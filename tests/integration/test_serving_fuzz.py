"""Fuzzing the running servers: at least 1,000 generated requests, not one 5xx, and still serving after.

Requests are built by hypothesis from valid records and the V2 request grammar: fields
dropped, added or replaced by arbitrary JSON, tensors with random names, datatypes and
shapes, random envelopes and raw bytes. Every answer must be 200 or a 4xx with a JSON
``error``; a 200 must carry one probability in [0, 1] per record.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import NAME, metric, records

from churn.data.schema import COLUMNS_BY_NAME
from churn.features.derive import FEATURE_INPUTS
from churn.serving.contract import tensor_type
from churn.serving.local import LocalService

pytestmark = pytest.mark.integration
SENT = {"transformer": 0, "single": 0, "predictor": 0}
FIELDS = [*FEATURE_INPUTS, "customer_id"]
DATATYPES = ["BYTES", "FP64", "FP32", "INT64", "INT32", "BOOL", "UINT8", "FP16", "STRING", ""]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2026-01-05", "", "NaN", "Infinity", "DE", "platinum", "2026-02-30"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated_records(draw: Any, base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(base), min_size=0, max_size=4))
    out = []
    for record in chosen:
        record = dict(record)
        for _ in range(draw(st.integers(0, 3))):
            action = draw(st.sampled_from(["replace", "drop", "add", "numeric_edge"]))
            field = draw(st.sampled_from(FIELDS))
            if action == "replace":
                record[field] = draw(json_values)
            elif action == "drop":
                record.pop(field, None)
            elif action == "add":
                record[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
            else:
                record[field] = draw(st.sampled_from([-1, 0, 10**12, 1e308, -1e-300, 0.5, 101, 17]))
        out.append(record)
    return out


@st.composite
def transformer_requests(draw: Any, base: list[dict[str, Any]]) -> tuple[str, Any]:
    """(path, body): body is JSON-able or raw bytes."""
    kind = draw(st.sampled_from(["v1", "v2_records", "v2_tensors", "v2_random", "raw"]))
    rows = draw(mutated_records(base))
    if kind == "v1":
        envelope = draw(st.sampled_from(["instances", "inputs", "data"]))
        return "v1", {envelope: rows if draw(st.booleans()) else draw(json_values)}
    if kind == "v2_records":
        elements = [json.dumps(r) for r in rows]
        if draw(st.booleans()):
            elements = [draw(st.text(max_size=20)) for _ in range(draw(st.integers(0, 3)))]
        shape = draw(st.sampled_from([[len(elements)], [len(elements), 1], [1], [], [len(elements) + 1]]))
        datatype = draw(st.sampled_from(["BYTES", "BYTES", "FP64", "INT32"]))
        return "v2", {"inputs": [{"name": "records", "datatype": datatype, "shape": shape, "data": elements}]}
    if kind == "v2_tensors":
        rows = rows or base[:1]
        tensors = []
        for name in FIELDS:
            values = [r.get(name) for r in rows]
            datatype = "BYTES" if name == "customer_id" else tensor_type(COLUMNS_BY_NAME[name])
            if draw(st.integers(0, 9)) == 0:
                datatype = draw(st.sampled_from(DATATYPES))
            shape: list[Any] = [len(values)]
            if draw(st.integers(0, 9)) == 0:
                shape = draw(st.lists(st.integers(-1, 4), max_size=3))
            if draw(st.integers(0, 19)) == 0:
                continue
            tensors.append({"name": name, "datatype": datatype, "shape": shape, "data": values})
        return "v2", {"inputs": tensors}
    if kind == "v2_random":
        return "v2", draw(json_values)
    return "v2", draw(st.binary(max_size=64) | st.sampled_from([b'{"inputs": [NaN]}', b"[" * 50, b"{}", b""]))


def _post(url: str, body: Any) -> requests.Response:
    if isinstance(body, bytes):
        return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=30)


def _check(response: requests.Response, body: Any) -> None:
    assert response.status_code < 500, (body, response.status_code, response.text[:300])
    if response.status_code != 200:
        assert "error" in response.json(), response.text


@pytest.fixture(scope="module")
def base(served_champion: Any) -> list[dict[str, Any]]:
    return records(served_champion.rows.head(20))


def test_fuzz_front_door_never_answers_5xx(service: LocalService, base: list[dict[str, Any]]) -> None:
    """The transformer, and the single-pass server (the ``service`` fixture runs both modes)."""
    url = service.config.transformer_url
    front = service.config.front

    @settings(max_examples=1_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(request=transformer_requests(base))
    def fuzz(request: tuple[str, Any]) -> None:
        protocol, body = request
        path = f"/v1/models/{NAME}:predict" if protocol == "v1" else f"/v2/models/{NAME}/infer"
        response = _post(url + path, body)
        SENT[front] += 1
        _check(response, body)
        if response.status_code == 200 and protocol == "v2":
            outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
            assert all(0.0 <= p <= 1.0 for p in outputs["churn_probability"])

    fuzz()
    assert SENT[front] >= 1_000
    good = _post(f"{url}/v1/models/{NAME}:predict", {"instances": base[:2]})
    assert good.status_code == 200 and len(good.json()["predictions"]) == 2
    assert metric(url, "churn_request_errors_total") == 0.0


def test_fuzz_predictor_never_answers_5xx(churn_service: LocalService) -> None:
    url = f"{churn_service.config.predictor_url}/v2/models/{NAME}/infer"
    numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**40), 2**40) | json_values

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        rows=st.integers(0, 3),
        width=st.sampled_from([73, 73, 72, 0, 1]),
        datatype=st.sampled_from(["FP64", "FP64", "FP32", "INT64", "BYTES"]),
        data=st.data(),
    )
    def fuzz(rows: int, width: int, datatype: str, data: Any) -> None:
        values = data.draw(st.lists(numbers, min_size=rows * width, max_size=rows * width + 1))
        shape = data.draw(st.sampled_from([[rows, width], [rows * width], [rows, width, 1]]))
        body = {"inputs": [{"name": "features", "datatype": datatype, "shape": shape, "data": values}]}
        response = _post(url, body)
        SENT["predictor"] += 1
        _check(response, body)

    fuzz()
    assert SENT["predictor"] >= 200
