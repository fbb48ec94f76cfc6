"""The REST fast path answers exactly as KServe's route: the same bytes, headers, statuses and metrics.

Two single-pass servers serve the same champion, one with the fast path
(:mod:`churn.serving.rest_fast`, the default) and one without
(``CHURN_SERVING__REST_FAST_PATH=false``: KServe's FastAPI route answers every request). Each
request form the protocol tests use, accepted and refused, and the bodies the fast path
declines (a body pydantic refuses, a cloud event, a binary body labelled otherwise, V1) go to
both; the status, the headers (but the date) and the body must be byte for byte the same, and
so must what each server counted (but the date and a cloud event answer's own id and time).
"""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from serving_helpers import NAME, binary_request, column_tensors, metric, records

from churn.serving.local import LocalService, ServiceConfig

pytestmark = pytest.mark.integration
V2 = f"/v2/models/{NAME}/infer"
JSON = {"Content-Type": "application/json"}
BINARY = {"Content-Type": "application/octet-stream"}
ALL_OUTPUTS = [{"name": n} for n in ("churn_probability", "churn_label", "customer_id", "churn_reasons")]
COUNTERS = (
    'churn_predictions_total{label="churned"}',
    'churn_predictions_total{label="retained"}',
    "churn_input_validation_failures_total",
    "churn_request_errors_total",
    "churn_request_duration_seconds_count",
    "churn_prediction_probability_count",
    "request_predict_seconds_count",  # KServe's own: exposed from the first request on
)


@pytest.fixture(scope="module")
def route_only_service(served_champion: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """The champion in single-pass mode with the fast path off: KServe's route answers every request."""
    config = ServiceConfig.on_free_ports(
        "models:/churn-model@champion",
        tracking_uri=served_champion.tracking_uri,
        mode="single",
        max_batch_size=2_000,
        log_dir=tmp_path_factory.mktemp("route-only-logs"),
        extra_env={"CHURN_SERVING__BODY_READ_TIMEOUT_SECONDS": "3", "CHURN_SERVING__REST_FAST_PATH": "false"},
    )
    with LocalService(config).start(timeout=120) as service:
        yield service


#: Headers every answer has its own of: the date, and a cloud event answer's id and time.
_PER_ANSWER = frozenset({"date", "ce-id", "ce-time"})


def _send(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
    """One POST; the status, the headers in the order sent (but the date and a cloud event's own) and the raw body."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        sent = [(k.lower(), v) for k, v in response.getheaders() if k.lower() not in _PER_ANSWER]
        return response.status, sent, response.read()
    finally:
        connection.close()


def _counted(base: str, series: str) -> float:
    try:
        return metric(base, series)
    except AssertionError:  # a KServe histogram before its first observation
        return 0.0


def _tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One JSON tensor per field, missing values as null (binary tensors write them as NaN)."""
    return [{**tensor, "data": [row[tensor["name"]] for row in rows]} for tensor in column_tensors(rows)]


def _requests(rows: list[dict[str, Any]]) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(what, path, body, headers): every form, accepted and refused, and what the fast path declines."""
    one, forty = rows[0], rows[:40]
    bad = {**one, "country": "ZZ"}
    records_input = {"name": "records", "datatype": "BYTES", "shape": [1], "data": [json.dumps(forty)]}
    binary, binary_length = binary_request(column_tensors(forty), id="b1")
    bad_binary, bad_length = binary_request(column_tensors([bad]), id="b2")
    binary_head = {**BINARY, "Inference-Header-Content-Length": str(binary_length)}

    def v2(body: Any) -> bytes:
        return json.dumps(body).encode()

    return [
        ("tensors, one row", V2, v2({"id": "r1", "inputs": _tensors([one])}), JSON),
        ("tensors, 40 rows, every output", V2,
         v2({"id": "r2", "inputs": _tensors(forty), "outputs": ALL_OUTPUTS}), JSON),
        ("records", V2, v2({"id": "r3", "inputs": [records_input]}), JSON),
        ("records, no label (tritonclient)", V2, v2({"id": "r4", "inputs": [records_input]}), {}),
        ("records, a form label (curl -d)", V2, v2({"id": "r5", "inputs": [records_input]}),
         {"Content-Type": "application/x-www-form-urlencoded"}),
        ("versioned URL", f"/v2/models/{NAME}/versions/1/infer", v2({"id": "r6", "inputs": [records_input]}), JSON),
        ("gzip", V2, gzip.compress(v2({"id": "r7", "inputs": [records_input]})), {**JSON, "Content-Encoding": "gzip"}),
        ("parameters and requested outputs", V2,
         v2({"id": "r8", "parameters": {"x": 1}, "inputs": [records_input], "outputs": [{"name": "churn_label"}]}),
         JSON),
        ("binary outputs", V2,
         v2({"id": "r9", "inputs": [records_input], "parameters": {"binary_data_output": True}}), JSON),
        ("one binary output", V2,
         v2({"id": "r10", "inputs": [records_input],
             "outputs": [{"name": "churn_probability", "parameters": {"binary_data": True}}, {"name": "churn_label"}]}),
         JSON),
        ("binary tensors", V2, binary, binary_head),
        ("binary tensors, no label (tritonclient)", V2, binary,
         {"Inference-Header-Content-Length": str(binary_length)}),
        ("binary tensors, refused value", V2, bad_binary,
         {**BINARY, "Inference-Header-Content-Length": str(bad_length)}),
        ("binary tensors, header length past the body", V2, binary,
         {**BINARY, "Inference-Header-Content-Length": str(len(binary) + 5)}),
        ("binary tensors, another label (declined)", V2, binary,
         {"Content-Type": "application/x-binary", "Inference-Header-Content-Length": str(binary_length)}),
        ("refused value", V2, v2({"id": "e1", "inputs": _tensors([bad])}), JSON),
        ("unknown output", V2, v2({"id": "e2", "inputs": [records_input], "outputs": [{"name": "churn_score"}]}),
         JSON),
        ("records not JSON", V2, v2({"id": "e3", "inputs": [{**records_input, "data": ["{not json"]}]}), JSON),
        ("records of the wrong datatype", V2, v2({"id": "e4", "inputs": [{**records_input, "datatype": "FP64"}]}),
         JSON),
        ("shape and data disagree", V2, v2({"id": "e5", "inputs": [{**records_input, "shape": [3]}]}), JSON),
        ("request id with a control character", V2, v2({"id": "e\n6", "inputs": [records_input]}), JSON),
        ("too many rows", V2, v2({"id": "e7", "inputs": [{**records_input, "data": [json.dumps(rows * 3)]}]}), JSON),
        ("no inputs (pydantic refuses: declined)", V2, v2({"id": "e8"}), JSON),
        ("shape of text (pydantic refuses: declined)", V2,
         v2({"id": "e9", "inputs": [{**records_input, "shape": "x"}]}), JSON),
        ("a JSON array", V2, b"[1, 2]", JSON),
        ("an empty body", V2, b"", JSON),
        ("another model", "/v2/models/other/infer", v2({"id": "e10", "inputs": [records_input]}), JSON),
        ("another version", f"/v2/models/{NAME}/versions/9/infer", v2({"id": "e11", "inputs": [records_input]}), JSON),
        ("a cloud event (declined)", V2, v2({"id": "c1", "inputs": [records_input]}),
         {**JSON, "ce-specversion": "1.0", "ce-source": "test", "ce-type": "infer", "ce-id": "c1"}),
        ("V1 (not this path)", f"/v1/models/{NAME}:predict", v2({"instances": forty[:3]}), JSON),
    ]  # fmt: skip


def test_the_fast_path_answers_byte_for_byte_as_kserves_route(
    single_service: LocalService, route_only_service: LocalService, served_champion: Any
) -> None:
    rows = records(served_champion.rows.head(700))
    sent = _requests(rows)
    answers: dict[str, list[tuple[str, int, list[tuple[str, str]], bytes]]] = {}
    counted: dict[str, list[float]] = {}
    for mode, service in (("fast", single_service), ("route", route_only_service)):
        base = service.config.transformer_url
        before = [_counted(base, series) for series in COUNTERS]
        answers[mode] = [(what, *_send(base, path, body, headers)) for what, path, body, headers in sent]
        counted[mode] = [_counted(base, series) - start for series, start in zip(COUNTERS, before, strict=True)]
    statuses = {what: status for what, status, _, _ in answers["route"]}
    accepted = ("tensors, one row", "tensors, 40 rows, every output", "records", "binary tensors", "binary outputs")
    assert {statuses[what] for what in accepted} == {200}
    assert statuses["refused value"] == statuses["a JSON array"] == statuses["no inputs (pydantic refuses: declined)"]
    assert statuses["refused value"] == 400 and statuses["another model"] == 404
    for fast, route in zip(answers["fast"], answers["route"], strict=True):
        assert fast == route, fast[0]
    assert counted["fast"] == counted["route"]
    assert counted["fast"][0] + counted["fast"][1] > 0 and counted["fast"][2] > 0


def test_the_fast_path_answers_what_it_takes_and_declines_the_rest_before_running_anything(
    served_champion: Any,
) -> None:
    """In one process, on KServe's real data plane: a V2 body is answered here, other routes and bodies are left."""
    import asyncio

    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane

    from churn.serving.dataplane import decode_bodies_strictly
    from churn.serving.loading import ServedModel
    from churn.serving.middleware import without_nulls
    from churn.serving.rest_fast import RestFastPath
    from churn.serving.single import ChurnSinglePass

    model = ChurnSinglePass("churn-model", ServedModel(served_champion.model, "1", "test"), max_batch_size=100)
    model.load()
    repository = ModelRepository(models_dir="")
    repository.update(model)
    dataplane = DataPlane(model_registry=repository)
    decode_bodies_strictly(dataplane)
    fast = RestFastPath(dataplane, {}, frozenset({NAME}), without_nulls)
    rows = records(served_champion.rows.head(3))
    body = {"id": "in-process", "inputs": _tensors(rows)}
    predictions = []  # what the model's postprocess counted: one per row answered

    async def ask(
        method: str,
        path: str,
        parsed: Any,
        headers: list[tuple[bytes, bytes]],
        raw: bytes | None = None,
        label: bytes = b"application/json",
    ) -> tuple[Any, list[Any]]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b""}
        if raw is None:
            raw = json.dumps(parsed).encode()
        status = await fast.answer(scope, receive, send, send, raw, parsed, label)
        predictions.append(metric_total())
        return status, sent

    def metric_total() -> float:
        from prometheus_client import REGISTRY

        return sum(
            sample.value
            for family in REGISTRY.collect()
            if family.name == "churn_predictions"
            for sample in family.samples
            if sample.name == "churn_predictions_total"
        )

    json_head = [(b"content-type", b"application/json")]
    start = metric_total()
    status, sent = asyncio.run(ask("POST", V2, body, json_head))
    assert status == 200 and sent[0]["status"] == 200
    answer = json.loads(sent[1]["body"])
    assert answer["id"] == "in-process" and answer["model_version"] == "1"
    assert [o["name"] for o in answer["outputs"]] == ["churn_probability", "churn_label", "customer_id"]
    assert predictions[-1] - start == len(rows)
    # A binary-extension body as tritonclient sends it (no Content-Type) or labelled octet-stream.
    binary, length = binary_request(column_tensors(rows), id="in-process-binary")
    binary_head = [(b"inference-header-content-length", str(length).encode())]
    for label in (b"", b"application/octet-stream"):
        status, sent = asyncio.run(ask("POST", V2, None, binary_head, raw=binary, label=label))
        assert status == 200 and json.loads(sent[1]["body"])["id"] == "in-process-binary", label
    assert predictions[-1] - start == 3 * len(rows)
    start = predictions[-1]
    declined = [
        ("GET", V2, body, json_head),
        ("POST", f"/v1/models/{NAME}:predict", {"instances": rows}, json_head),
        ("POST", "/v2/models/other/infer", body, json_head),
        ("POST", V2, {"id": "x"}, json_head),  # no inputs: pydantic's refusal, FastAPI's message
        ("POST", V2, body, [*json_head, (b"ce-specversion", b"1.0")]),
    ]
    for method, path, parsed, headers in declined:
        status, sent = asyncio.run(ask(method, path, parsed, headers))
        assert status is None and sent == [], (method, path)
    for label in (b"application/x-binary", b"text/plain"):  # FastAPI's reading of other labels: the route's
        status, sent = asyncio.run(ask("POST", V2, None, binary_head, raw=binary, label=label))
        assert status is None and sent == [], label
    assert predictions[-1] == start  # nothing ran for a declined request
