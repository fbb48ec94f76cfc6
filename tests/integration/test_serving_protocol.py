"""One contract, every request form: the same values accepted and refused, with the same message.

Each case changes one field of one real record and sends it in every form a client may use:
V2 tensors as JSON, V2 tensors in the binary extension, the V2 ``records`` input, V1
``instances`` and V2 gRPC (tritonclient, in a subprocess). A refused value must be a 400
(INVALID_ARGUMENT) with the same message in every form that can carry it; an accepted one
must score the same in every form. Binary and gRPC tensors cannot carry text in a numeric
field or a JSON-only token, so those cases skip them; there, NaN is how "missing" is written.

Then the rest of the protocol a client relies on: the binary extension's sizes checked
(hypothesis over header lengths, sizes and truncations: never a 5xx), requested outputs,
versioned endpoints, answers without nulls, gzip bodies, and a body that never completes.

Every test runs against both serving modes (the ``service`` fixture: predictor + transformer,
and the single-pass server), and one test holds the two modes' answers equal, byte for byte.
"""

from __future__ import annotations

import gzip
import json
import math
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import NAME, binary_request, metric, records

from churn.data.schema import COLUMNS_BY_NAME, ID
from churn.features.derive import FEATURE_INPUTS
from churn.serving.contract import tensor_type
from churn.serving.local import LocalService

pytestmark = pytest.mark.integration
TRITON_GRPC = Path(__file__).parent / "clients" / "triton_grpc.py"
SKIP = object()  # the form cannot carry this value
FORMS = ("tensors_json", "tensors_binary", "records", "v1", "grpc")


@dataclass(frozen=True)
class Case:
    name: str
    field: str
    value: Any
    refused: str | None  # what every form's message holds; None: accepted
    binary: Any = field(default=None)  # the value as binary and gRPC tensors carry it (default: the same)
    binary_same: bool = True

    def in_binary(self) -> Any:
        return self.value if self.binary_same else self.binary


def _case(name: str, column: str, value: Any, refused: str | None, binary: Any = "same") -> Case:
    if binary == "same":
        return Case(name, column, value, refused)
    return Case(name, column, value, refused, binary=binary, binary_same=False)


BAD_DATES = [
    "NaT",
    "today",
    "2026-01",
    "2026-01-05T00:00:00",
    "+2026-01-05",
    "02026-01-05",
    "2026-02-30",
    " 2026-01-05",
]
CASES = [
    _case("number as text", "age", "62", "'age' in row 0 must be a number, got str \"62\"", SKIP),
    _case("NaN token", "age", math.nan, "'age' in row 0 is nan; send a finite number, or null if unknown", SKIP),
    _case("infinity token", "total_spend", math.inf, "'total_spend' in row 0 is inf", SKIP),
    _case("boolean number", "age", True, "'age' in row 0 must be a number, got bool", SKIP),
    _case(
        "required number missing", "total_orders", None, "'total_orders' in row 0 is missing (null/NaN); it is required"
    ),
    _case("nullable number missing", "age", None, None),
    _case("below range", "age", -5, "'age' in row 0 is -5; allowed range"),
    _case("fraction of a count", "total_orders", 2.5, "'total_orders' in row 0 is 2.5; it must be a whole number"),
    *(
        _case(f"date {d!r}", "signup_date", d, f"'signup_date' in row 0 is {d!r}; expected a date as YYYY-MM-DD")
        for d in BAD_DATES
    ),
    _case("empty date", "signup_date", "", "'signup_date' in row 0 is null; it is required"),
    _case("signup after snapshot", "signup_date", "2030-01-01", "row 0 has signup_date 2030-01-01 after snapshot_date"),
    _case("category as number", "country", 5, "'country' in row 0 must be a string, got int 5", SKIP),
    _case("lone surrogate", "country", "\ud800", "'country' in row 0 is not valid UTF-8 text", {"hex": "eda080"}),
    _case("nullable category missing", "gender", None, None),
    _case("empty category is missing", "gender", "", None),
    _case("unknown category", "country", "ZZ", "'country' in row 0 is 'ZZ'; expected one of "),
    # Control characters, in every kind of string field: numpy's text arrays drop a trailing NUL,
    # so "2026-01-05\x00" was scored as 2026-01-05.
    _case(
        "NUL after a date",
        "snapshot_date",
        "2026-01-05\x00",
        "'snapshot_date' in row 0 is '2026-01-05\\x00'; it holds a control character",
    ),
    _case("line break in a category", "country", "DE\n", "'country' in row 0 is 'DE\\n'; it holds a control character"),
    _case(
        "DEL in a category",
        "payment_method",
        "debit_card\x7f",
        "'payment_method' in row 0 is 'debit_card\\x7f'; it holds",
    ),
    _case(
        "tab in customer_id", "customer_id", "c-1\t2", "'customer_id' in row 0 is 'c-1\\t2'; it must be printable text"
    ),
    _case(
        "NUL in customer_id", "customer_id", "c\x00", "'customer_id' in row 0 is 'c\\x00'; it must be printable text"
    ),
    _case(
        "long customer_id", "customer_id", "c" * 129, "'customer_id' in row 0 is 129 characters long; the limit is 128"
    ),
    _case("customer_id as object", "customer_id", {"id": 1}, "'customer_id' in row 0 must be a string, got dict", SKIP),
]


def _row(base: dict[str, Any], case: Case, binary: bool) -> dict[str, Any]:
    return {**base, case.field: case.in_binary() if binary else case.value}


def _tensors(*rows: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON tensor per field, missing values as null."""
    return [
        {
            "name": name,
            "datatype": "BYTES" if name == ID else tensor_type(COLUMNS_BY_NAME[name]),
            "shape": [len(rows)],
            "data": [row[name] for row in rows],
        }
        for name in (*FEATURE_INPUTS, ID)
    ]


def _dumps(body: Any) -> str:
    return json.dumps(body, allow_nan=True)


def _rest(url: str, data: bytes | str, headers: dict[str, str]) -> tuple[int, Any]:
    response = requests.post(url, data=data, headers=headers, timeout=30)
    payload = response.json()
    if response.status_code != 200:
        return response.status_code, payload["error"]
    if "predictions" in payload:
        return 200, payload["predictions"][0]["churn_probability"]
    return 200, next(o for o in payload["outputs"] if o["name"] == "churn_probability")["data"][0]


def _send_rest(service: LocalService, form: str, row: dict[str, Any]) -> tuple[int, Any]:
    base = service.config.transformer_url
    v2 = f"{base}/v2/models/{NAME}/infer"
    json_headers = {"Content-Type": "application/json"}
    if form == "tensors_json":
        return _rest(v2, _dumps({"inputs": _tensors(row)}), json_headers)
    if form == "tensors_binary":
        body, length = binary_request(_tensors(row))
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(length)}
        return _rest(v2, body, headers)
    if form == "records":
        tensor = {"name": "records", "datatype": "BYTES", "shape": [1], "data": [_dumps([row])]}
        return _rest(v2, _dumps({"inputs": [tensor]}), json_headers)
    assert form == "v1"
    return _rest(f"{base}/v1/models/{NAME}:predict", _dumps({"instances": [row]}), json_headers)


def _grpc(url: str, grpc_requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = _dumps({"url": url, "model": NAME, "requests": grpc_requests})
    done = subprocess.run(
        [sys.executable, str(TRITON_GRPC)], input=spec, capture_output=True, text=True, timeout=120, check=True
    )
    return list(json.loads(done.stdout))


@pytest.fixture(scope="module")
def base_row(service: LocalService, served_champion: Any) -> dict[str, Any]:
    """A real record with every field present (so each case changes exactly one thing)."""
    rows = records(served_champion.rows)
    return next(r for r in rows if all(r[name] is not None for name in FEATURE_INPUTS))


def _log_sizes(service: LocalService) -> dict[str, int]:
    return {role: (service.config.log_dir / f"{role}.log").stat().st_size for role in service.config.roles}


@pytest.fixture(scope="module")
def log_start(service: LocalService) -> dict[str, int]:
    """Where each server's log stood before this module's hostile requests."""
    return _log_sizes(service)


@pytest.fixture(scope="module")
def answers(
    service: LocalService, base_row: dict[str, Any], log_start: dict[str, int]
) -> dict[str, dict[str, tuple[int, Any]]]:
    """Every case in every form that can carry it: case name -> form -> (status, message or probability)."""
    out: dict[str, dict[str, tuple[int, Any]]] = {}
    grpc_cases = []
    for case in CASES:
        out[case.name] = {}
        for form in ("tensors_json", "records", "v1"):
            out[case.name][form] = _send_rest(service, form, _row(base_row, case, binary=False))
        if case.in_binary() is not SKIP:
            out[case.name]["tensors_binary"] = _send_rest(service, "tensors_binary", _row(base_row, case, True))
            grpc_cases.append(case)
    url = f"{service.config.host}:{service.config.transformer_grpc_port}"
    grpc_answers = _grpc(url, [{"inputs": _tensors(_row(base_row, case, True))} for case in grpc_cases])
    for case, answer in zip(grpc_cases, grpc_answers, strict=True):
        if "error" in answer:
            assert answer["error"]["status"] == "StatusCode.INVALID_ARGUMENT", answer
            out[case.name]["grpc"] = (400, answer["error"]["message"])
        else:
            out[case.name]["grpc"] = (200, answer["outputs"]["churn_probability"][0])
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_form_accepts_and_refuses_the_same_values_with_the_same_message(
    case: Case, answers: dict[str, dict[str, tuple[int, Any]]]
) -> None:
    by_form = answers[case.name]
    assert set(by_form) == set(FORMS) if case.in_binary() is not SKIP else {"tensors_json", "records", "v1"}
    statuses = {form: status for form, (status, _) in by_form.items()}
    if case.refused is None:
        assert set(statuses.values()) == {200}, by_form
        probabilities = [answer for _, answer in by_form.values()]
        np.testing.assert_allclose(probabilities, probabilities[0], rtol=1e-12)
        return
    assert set(statuses.values()) == {400}, by_form
    messages = {form: message for form, (_, message) in by_form.items()}
    assert len(set(messages.values())) == 1, f"forms disagree: {messages}"
    assert case.refused in next(iter(messages.values()))


# --------------------------------------------------------------------------- the binary extension
def _post_binary(service: LocalService, body: bytes, header_length: str) -> requests.Response:
    return requests.post(
        f"{service.config.transformer_url}/v2/models/{NAME}/infer",
        data=body,
        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": header_length},
        timeout=30,
    )


def test_binary_requests_score_and_malformed_ones_are_400s_naming_the_problem(
    service: LocalService, base_row: dict[str, Any]
) -> None:
    body, length = binary_request(_tensors(base_row))
    assert _post_binary(service, body, str(length)).status_code == 200
    head = json.loads(body[:length])
    age_at = next(i for i, t in enumerate(head["inputs"]) if t["name"] == "age")
    wrong_size = json.loads(json.dumps(head))
    wrong_size["inputs"][age_at]["parameters"]["binary_data_size"] = 4  # FP64 [1] needs 8
    cases = [
        (body, "abc", "Inference-Header-Content-Length must be a whole number"),
        (body, "-3", "Inference-Header-Content-Length must be a whole number"),
        (body, str(len(body) + 10), f"the body holds {len(body)} bytes"),
        (body[:-3], str(length), "declares"),
        (body + b"xx", str(length), "bytes after the inputs"),
        (json.dumps(wrong_size).encode() + body[length:], str(len(json.dumps(wrong_size))), "'age'"),
    ]
    for data, header, message in cases:
        response = _post_binary(service, data, header)
        assert response.status_code == 400, (header, response.text)
        assert message in response.json()["error"], response.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_binary_body_gets_a_5xx(service: LocalService, base_row: dict[str, Any], data: st.DataObject) -> None:
    body, length = binary_request(_tensors(base_row))
    head = json.loads(body[:length])
    mutate = data.draw(st.sampled_from(["truncate", "extend", "header", "size", "shape", "datatype"]))
    header = str(length)
    if mutate == "truncate":
        body = body[: data.draw(st.integers(0, len(body)))]
    elif mutate == "extend":
        body += data.draw(st.binary(min_size=1, max_size=64))
    elif mutate == "header":
        header = data.draw(st.one_of(st.integers(-10, len(body) + 10).map(str), st.text(max_size=8)))
    else:
        tensor = head["inputs"][data.draw(st.integers(0, len(head["inputs"]) - 1))]
        if mutate == "size":
            tensor["parameters"]["binary_data_size"] = data.draw(st.one_of(st.integers(-5, 10**6), st.text(max_size=3)))
        elif mutate == "shape":
            tensor["shape"] = data.draw(st.lists(st.integers(-2, 10**9), max_size=3))
        else:
            tensor["datatype"] = data.draw(st.sampled_from(["FP32", "INT8", "BOOL", "BYTES", "FP16", "X"]))
        new_head = json.dumps(head).encode()
        body, header = new_head + body[length:], str(len(new_head))
    try:
        response = _post_binary(service, body, header.encode("latin-1", "replace").decode("latin-1"))
    except (UnicodeEncodeError, ValueError):
        return  # a header value requests itself cannot send
    assert response.status_code < 500, response.text


# --------------------------------------------------------------------------- the rest of the protocol
def test_requested_outputs_are_the_outputs_returned(service: LocalService, base_row: dict[str, Any]) -> None:
    v2 = f"{service.config.transformer_url}/v2/models/{NAME}/infer"
    body = {"inputs": _tensors(base_row), "outputs": [{"name": "churn_label"}]}
    answer = requests.post(v2, json=body, timeout=10).json()
    assert [o["name"] for o in answer["outputs"]] == ["churn_label"]
    body["outputs"] = [{"name": "churn_score"}]
    refused = requests.post(v2, json=body, timeout=10)
    assert refused.status_code == 400 and "'churn_score'" in refused.json()["error"]
    url = f"{service.config.host}:{service.config.transformer_grpc_port}"
    grpc = _grpc(
        url,
        [
            {"inputs": _tensors(base_row), "outputs": ["churn_probability"]},
            {"inputs": _tensors(base_row), "outputs": ["churn_score"]},
        ],
    )
    assert list(grpc[0]["outputs"]) == ["churn_probability"]
    assert grpc[1]["error"]["status"] == "StatusCode.INVALID_ARGUMENT"
    if "predictor" not in service.config.roles:
        return
    # The predictor holds its own input and output names to its metadata.
    predictor = f"{service.config.predictor_url}/v2/models/{NAME}/infer"
    width = requests.get(f"{service.config.predictor_url}/v2/models/{NAME}", timeout=10).json()
    n = width["inputs"][0]["shape"][1]
    matrix = {"name": "matrix", "datatype": "FP64", "shape": [1, n], "data": [0.0] * n}
    refused = requests.post(predictor, json={"inputs": [matrix]}, timeout=10)
    assert refused.status_code == 400 and "'matrix'" in refused.json()["error"]


def test_versioned_endpoints_serve_the_loaded_version_only(service: LocalService, base_row: dict[str, Any]) -> None:
    for base in service.config.urls.values():
        metadata = requests.get(f"{base}/v2/models/{NAME}", timeout=10).json()
        (version,) = metadata["versions"]
        assert requests.get(f"{base}/v2/models/{NAME}/versions/{version}", timeout=10).json() == metadata
        assert requests.get(f"{base}/v2/models/{NAME}/versions/{version}/ready", timeout=10).json()["ready"] is True
        for path in ("", "/ready"):
            missing = requests.get(f"{base}/v2/models/{NAME}/versions/999{path}", timeout=10)
            assert missing.status_code == 404 and "no version '999'" in missing.json()["error"]
    v2 = f"{service.config.transformer_url}/v2/models/{NAME}/versions/{version}/infer"
    assert requests.post(v2, json={"inputs": _tensors(base_row)}, timeout=10).status_code == 200
    assert requests.post(v2.replace(f"/{version}/", "/999/"), json={}, timeout=10).status_code == 404
    url = f"{service.config.host}:{service.config.transformer_grpc_port}"
    grpc = _grpc(
        url,
        [
            {"inputs": _tensors(base_row), "model_version": version},
            {"inputs": _tensors(base_row), "model_version": "999"},
        ],
    )
    assert grpc[0]["model_version"] == version
    assert grpc[1]["error"]["status"] == "StatusCode.NOT_FOUND"


def _without_ids(answer: Any) -> Any:
    """An answer with its per-request ids dropped (each server makes its own)."""
    return {key: value for key, value in answer.items() if key != "id"} if isinstance(answer, dict) else answer


def test_both_modes_answer_exactly_the_same(
    churn_service: LocalService, single_service: LocalService, served_champion: Any
) -> None:
    """Single-pass mode is the transformer's contract, model and answers in one process: byte for byte the same."""
    rows = records(served_champion.rows.head(40))
    with_reasons = [{"name": name} for name in ("churn_probability", "churn_label", "customer_id", "churn_reasons")]
    bad = {**rows[0], "country": "ZZ"}
    requests_to_send: list[tuple[str, str, Any]] = [
        ("GET", f"/v2/models/{NAME}", None),
        ("GET", f"/v1/models/{NAME}", None),
        ("POST", f"/v2/models/{NAME}/infer", {"id": "r1", "inputs": _tensors(rows[0])}),
        ("POST", f"/v2/models/{NAME}/infer", {"inputs": _tensors(*rows), "outputs": with_reasons}),
        ("POST", f"/v2/models/{NAME}/infer", {"inputs": [{"name": "records", "datatype": "BYTES", "shape": [1],
                                                          "data": [_dumps(rows)]}]}),
        ("POST", f"/v1/models/{NAME}:predict", {"instances": rows}),
        ("POST", f"/v1/models/{NAME}:explain", {"instances": rows[:5]}),
        ("POST", f"/v2/models/{NAME}/infer", {"inputs": _tensors(bad)}),
        ("POST", f"/v1/models/{NAME}:predict", {"instances": [bad]}),
        ("POST", f"/v2/models/{NAME}/infer", {"inputs": _tensors(rows[0]), "outputs": [{"name": "churn_score"}]}),
    ]  # fmt: skip
    counters = ('churn_predictions_total{label="churned"}', 'churn_predictions_total{label="retained"}')
    answers, counted = {}, {}
    json_headers = {"Content-Type": "application/json"}
    for mode, service in (("transformer", churn_service), ("single", single_service)):
        base = service.config.transformer_url
        before = [metric(base, series) for series in counters]
        answers[mode] = []
        for verb, path, body in requests_to_send:
            data = None if body is None else _dumps(body)  # NaN is how a JSON tensor says "missing"
            response = requests.request(verb, base + path, data=data, headers=json_headers, timeout=30)
            answers[mode].append((response.status_code, _without_ids(response.json())))
        counted[mode] = [metric(base, series) - start for series, start in zip(counters, before, strict=True)]
        grpc_url = f"{service.config.host}:{service.config.transformer_grpc_port}"
        answers[mode].append(_grpc(grpc_url, [{"inputs": _tensors(row)} for row in rows[:3]]))
    assert [status for status, _ in answers["transformer"][:-1]] == [200] * 7 + [400] * 3
    assert answers["single"] == answers["transformer"]
    assert counted["single"] == counted["transformer"] and sum(counted["single"]) == 1 + 40 + 40 + 40 + 5


def _nulls(value: Any, path: str = "") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return []


def test_answers_hold_no_nulls_where_the_spec_has_arrays_or_objects(
    service: LocalService, base_row: dict[str, Any]
) -> None:
    for base in service.config.urls.values():
        for path in ("/v2", f"/v2/models/{NAME}", f"/v2/models/{NAME}/ready"):
            answer = requests.get(base + path, timeout=10).json()
            assert not _nulls(answer), (path, answer)
    answer = requests.post(
        f"{service.config.transformer_url}/v2/models/{NAME}/infer",
        json={"inputs": _tensors(base_row)},
        timeout=10,
    ).json()
    assert not _nulls(answer), answer


def test_gzip_bodies_are_read_and_other_encodings_are_415(service: LocalService, base_row: dict[str, Any]) -> None:
    v2 = f"{service.config.transformer_url}/v2/models/{NAME}/infer"
    plain = json.dumps({"inputs": _tensors(base_row)}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    zipped = requests.post(v2, data=gzip.compress(plain), headers=headers, timeout=10)
    direct = requests.post(v2, data=plain, headers={"Content-Type": "application/json"}, timeout=10)
    assert zipped.status_code == 200
    assert zipped.json()["outputs"][0]["data"] == direct.json()["outputs"][0]["data"]
    mislabelled = requests.post(v2, data=plain, headers=headers, timeout=10)
    assert mislabelled.status_code == 400 and "gzip" in mislabelled.json()["error"]
    other = requests.post(v2, data=plain, headers={**headers, "Content-Encoding": "br"}, timeout=10)
    assert other.status_code == 415 and "'br'" in other.json()["error"]


def _nested(levels: int, inner: str = "1") -> str:
    return '{"a":' * levels + inner + "}" * levels


def test_deep_bare_and_undecodable_json_bodies_are_400s_saying_what_arrived(
    service: LocalService, base_row: dict[str, Any]
) -> None:
    """Every JSON parse of caller data bounds nesting (32 levels) and names what it received; nothing is a 5xx."""
    config = service.config
    json_headers = {"Content-Type": "application/json"}
    plain = _dumps({"inputs": _tensors(base_row)}).encode()
    deep = _nested(10_000)
    records_element = {"name": "records", "datatype": "BYTES", "shape": [1], "data": [deep]}
    binary_body, length = binary_request(_tensors(base_row))
    deep_header = ('{"inputs": [' + _nested(10_000, "[]") + "]}").encode()
    before = {url: metric(url, "churn_request_errors_total") for url in config.urls.values()}
    cases: list[tuple[str, str, bytes, dict[str, str], str]] = []
    for base in config.urls.values():
        v2, v1 = f"{base}/v2/models/{NAME}/infer", f"{base}/v1/models/{NAME}"
        cases += [
            (base, v2, f'{{"inputs": {deep}}}'.encode(), json_headers, "nested more than 32 levels deep"),
            (base, v2, ("[" * 40 + "]" * 40).encode(), json_headers, "nested more than 32 levels deep"),
            (base, v2, b'"inputs"', json_headers, 'the request body is a JSON string ("inputs")'),
            (base, v2, b"[1, 2]", json_headers, "the request body is a JSON array ([1, 2]); an inference request"),
            (base, v2, gzip.compress(plain), json_headers, "Content-Encoding: gzip"),
            (base, v2, b"\xff\xfe{}", {}, "the request body is not UTF-8 JSON text"),
            (base, v2, b'{"inputs": [', json_headers, "the request body is not valid JSON"),
            (base, f"{v1}:predict", f'{{"instances": [{deep}]}}'.encode(), json_headers, "nested more than 32"),
            (base, f"{v1}:predict", b'"instances"', json_headers, "is a JSON string"),
            (base, f"{v1}:predict", b"[NaN, " + deep.encode() + b"]", json_headers, "nested more than 32"),
            (base, f"{v1}:explain", f'{{"instances": [{deep}]}}'.encode(), json_headers, "nested more than 32"),
        ]
    transformer_v2 = f"{config.transformer_url}/v2/models/{NAME}/infer"
    binary_headers = {"Content-Type": "application/octet-stream"}
    cases += [
        (config.transformer_url, transformer_v2, _dumps({"inputs": [records_element]}).encode(), json_headers,
         "input 'records' element 0 is JSON nested more than 32 levels deep"),
        (config.transformer_url, transformer_v2, deep_header + binary_body[length:],
         {**binary_headers, "Inference-Header-Content-Length": str(len(deep_header))}, "nested more than 32"),
    ]  # fmt: skip
    for _, url, body, headers, message in cases:
        response = requests.post(url, data=body, headers=headers, timeout=30)
        assert response.status_code == 400, (url, body[:60], response.status_code, response.text[:300])
        assert message in response.json()["error"], (url, body[:60], response.text[:300])
    # gRPC carries the records input's elements as raw bytes: the same parse, the same bound.
    url = f"{config.host}:{config.transformer_grpc_port}"
    (answer,) = _grpc(url, [{"inputs": [records_element]}])
    assert answer["error"]["status"] == "StatusCode.INVALID_ARGUMENT", answer
    assert "input 'records' element 0 is JSON nested more than 32 levels deep" in answer["error"]["message"]
    # The door lets good bodies through, labelled or not.
    assert requests.post(transformer_v2, data=plain, headers=json_headers, timeout=30).status_code == 200
    assert requests.post(transformer_v2, data=plain, timeout=30).status_code == 200
    assert {url: metric(url, "churn_request_errors_total") for url in before} == before


def test_raw_grpc_bytes_that_do_not_add_up_are_invalid_argument_naming_the_input(
    service: LocalService, base_row: dict[str, Any]
) -> None:
    """gRPC raw contents of a BYTES input (4-byte length, then the bytes) are read strictly, as REST binary is.

    KServe's own reader raised struct.error (an INTERNAL error) on a length running past the
    data. Sent with KServe's generated stubs (tritonclient always writes well-formed lengths).
    """
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as stubs

    element = json.dumps(base_row).encode()
    good = len(element).to_bytes(4, "little") + element
    cases = [
        (good, 1, None),
        (good[:-5], 1, "BYTES element 0 runs past the end of the input's data"),
        (good + b"\x01\x00", 2, "BYTES element 1 has a truncated length prefix"),
        (good + good, 1, "holds 2 BYTES elements; shape [1] needs 1"),
    ]
    before = metric(service.config.transformer_url, "churn_request_errors_total")
    with grpc.insecure_channel(f"{service.config.host}:{service.config.transformer_grpc_port}") as channel:
        infer = stubs.GRPCInferenceServiceStub(channel).ModelInfer
        for raw, rows, message in cases:
            request = pb.ModelInferRequest(model_name=NAME, raw_input_contents=[raw])
            request.inputs.add(name="records", datatype="BYTES", shape=[rows])
            if message is None:
                answer = infer(request, timeout=30)
                assert len(answer.raw_output_contents[0]) == 8 * rows  # one FP64 probability
                continue
            with pytest.raises(grpc.RpcError) as refused:
                infer(request, timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
            assert "input 'records'" in str(refused.value.details()), refused.value.details()
            assert message in str(refused.value.details()), refused.value.details()
    assert metric(service.config.transformer_url, "churn_request_errors_total") == before


def test_a_body_shorter_than_its_content_length_gets_a_408(service: LocalService) -> None:
    """The server stops waiting (CHURN_SERVING__BODY_READ_TIMEOUT_SECONDS, 3 s in these tests)."""
    host, port = service.config.host, service.config.transformer_http_port
    with socket.create_connection((host, port), timeout=30) as connection:
        connection.sendall(
            f"POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            'Content-Length: 1000\r\n\r\n{"inputs": ['.encode()
        )
        start = time.monotonic()
        answer = connection.recv(4096).decode(errors="replace")
        waited = time.monotonic() - start
    assert answer.startswith("HTTP/1.1 408"), answer
    assert waited < 20
    # The server still answers.
    assert requests.get(f"{service.config.transformer_url}/v2/health/ready", timeout=10).status_code == 200


def test_a_callers_mistake_is_one_log_line_not_a_traceback(
    service: LocalService, answers: dict[str, Any], log_start: dict[str, int]
) -> None:
    """Hundreds of hostile requests must not fill the servers' logs with stacks."""
    refused = sum(1 for by_form in answers.values() for status, _ in by_form.values() if status == 400)
    assert refused > 50
    front = service.config.front
    written = (service.config.log_dir / f"{front}.log").read_bytes()[log_start[front] :].decode()
    assert "Traceback" not in written, written[-3000:]
    warnings = [line for line in written.splitlines() if " 400 POST /v" in line or "INVALID_ARGUMENT" in line]
    assert len(warnings) >= refused // 2, written[-2000:]
