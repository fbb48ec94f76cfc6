"""The predictor and transformer as real KServe servers, called by real V2 clients written by others.

``churn_service`` (conftest) runs both servers as separate processes on loopback, the
transformer calling the predictor over gRPC, exactly as the two containers of the
InferenceService do. Clients: ``tritonclient`` (HTTP in-process; gRPC in a subprocess,
because tritonclient.grpc and kserve register the same protobuf package), KServe's
``InferenceRESTClient``/``InferenceGRPCClient``, and plain HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from serving_helpers import NAME, column_tensors, metric, records, triton_inputs

from churn.features.derive import FEATURE_INPUTS
from churn.forkserver import ForkedProcess
from churn.serving.client import answer_rows, predict_records, read_records_file
from churn.serving.local import LocalService, ServiceConfig

ServedChampion = Any  # conftest.ServedChampion (tests are not a package)

pytestmark = pytest.mark.integration
TRITON_GRPC = Path(__file__).parent / "clients" / "triton_grpc.py"


def triton_grpc(url: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    spec = json.dumps({"url": url, "model": NAME, "inputs": inputs}, allow_nan=True)
    done = subprocess.run(
        [sys.executable, str(TRITON_GRPC)], input=spec, capture_output=True, text=True, timeout=60, check=True
    )
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def rows(served_champion: ServedChampion) -> list[dict[str, Any]]:
    return records(served_champion.rows)


@pytest.fixture(scope="module")
def expected(served_champion: ServedChampion) -> np.ndarray:
    """In-process predict_proba of the champion on the same raw rows (the offline path)."""
    return served_champion.model.predict_proba(served_champion.rows)


def test_health_readiness_and_metadata(churn_service: LocalService) -> None:
    config = churn_service.config
    for url in (config.transformer_url, config.predictor_url):
        assert requests.get(f"{url}/v2/health/live", timeout=5).json() == {"live": True}
        assert requests.get(f"{url}/v2/health/ready", timeout=5).json() == {"ready": True}
        assert requests.get(f"{url}/v2/models/{NAME}/ready", timeout=5).status_code == 200
    meta = requests.get(f"{config.transformer_url}/v2/models/{NAME}", timeout=5).json()
    inputs = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert inputs["age"] == "FP64" and inputs["country"] == "BYTES" and inputs["signup_date"] == "BYTES"
    assert set(FEATURE_INPUTS) <= set(inputs) and "records" in inputs
    assert [o["name"] for o in meta["outputs"]][:2] == ["churn_probability", "churn_label"]
    predictor_meta = requests.get(f"{config.predictor_url}/v2/models/{NAME}", timeout=5).json()
    assert predictor_meta["inputs"][0]["shape"][1] == 73


def test_served_probabilities_equal_in_process_predict_proba_for_1000_rows(
    churn_service: LocalService, served_champion: ServedChampion, expected: np.ndarray
) -> None:
    """No training/serving skew: the raw file through the service == the model on the same file offline."""
    sent = read_records_file(served_champion.raw_file)
    assert len(sent) == 1_000
    answer = predict_records(churn_service.config.transformer_url, NAME, sent)
    served = np.asarray([row["churn_probability"] for row in answer_rows(answer)])
    np.testing.assert_allclose(served, expected, rtol=1e-12, atol=0)
    labels = np.asarray([row["churn_label"] for row in answer_rows(answer)])
    np.testing.assert_array_equal(labels, (expected >= served_champion.model.threshold).astype(int))
    assert answer["model_version"] == "1"


def test_tritonclient_http_column_tensors_binary(
    churn_service: LocalService, rows: list[dict[str, Any]], expected: np.ndarray
) -> None:
    import tritonclient.http as httpclient

    config = churn_service.config
    client = httpclient.InferenceServerClient(url=f"{config.host}:{config.transformer_http_port}")
    assert client.is_server_ready() and client.is_model_ready(NAME)
    result = client.infer(NAME, triton_inputs(rows[:50]))
    np.testing.assert_allclose(result.as_numpy("churn_probability"), expected[:50], rtol=1e-12)
    first_id = result.as_numpy("customer_id")[0]
    assert (first_id.decode() if isinstance(first_id, bytes) else first_id) == rows[0]["customer_id"]

    predictor = httpclient.InferenceServerClient(url=f"{config.host}:{config.predictor_http_port}")
    matrix = httpclient.InferInput("features", [3, 73], "FP64")
    features = np.ascontiguousarray(churn_service_matrix(rows[:3]))
    matrix.set_data_from_numpy(features, binary_data=True)
    direct = predictor.infer(NAME, [matrix]).as_numpy("churn_probability")
    np.testing.assert_allclose(direct, expected[:3], rtol=1e-12)


def churn_service_matrix(rows: list[dict[str, Any]]) -> np.ndarray:
    """The champion's own feature pipeline on ``rows`` (what the transformer sends the predictor)."""
    from churn.registry.mlflow_registry import load_churn_model

    return load_churn_model("models:/churn-model@champion").features.transform(rows)


def test_tritonclient_grpc_transformer_and_predictor(
    churn_service: LocalService, rows: list[dict[str, Any]], expected: np.ndarray
) -> None:
    config = churn_service.config
    timed = 'churn_request_duration_seconds_count{model_version="1"}'
    before = metric(config.transformer_url, timed)
    answer = triton_grpc(f"{config.host}:{config.transformer_grpc_port}", column_tensors(rows[:20]))
    np.testing.assert_allclose(answer["outputs"]["churn_probability"], expected[:20], rtol=1e-12)
    assert answer["model_version"] == "1" and answer["live"] is True
    assert metric(config.transformer_url, timed) == before + 1  # a gRPC request is timed on the front door too

    features = churn_service_matrix(rows[:4])
    matrix = [{"name": "features", "datatype": "FP64", "shape": [4, 73], "data": features.tolist()}]
    direct = triton_grpc(f"{config.host}:{config.predictor_grpc_port}", matrix)
    np.testing.assert_allclose(direct["outputs"]["churn_probability"], expected[:4], rtol=1e-12)

    bad = column_tensors(rows[:2])
    bad[2]["data"] = [-5.0, 40.0]  # age
    refused = triton_grpc(f"{config.host}:{config.transformer_grpc_port}", bad)
    assert refused["error"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "'age' in row 0" in refused["error"]["message"]


def test_kserve_rest_and_grpc_clients(
    churn_service: LocalService, rows: list[dict[str, Any]], expected: np.ndarray
) -> None:
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

    config = churn_service.config
    elements = np.asarray([json.dumps(r).encode() for r in rows[:10]], dtype=np.object_)

    def request() -> InferRequest:
        item = InferInput("records", [10], "BYTES")
        item.set_data_from_numpy(elements, binary_data=False)
        return InferRequest(model_name=NAME, infer_inputs=[item], request_id="kserve-client")

    async def call() -> tuple[Any, Any]:
        rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        grpc = InferenceGRPCClient(f"{config.host}:{config.transformer_grpc_port}", timeout=30)
        try:
            by_rest = await rest.infer(config.transformer_url, request(), model_name=NAME)
            by_grpc = await grpc.infer(request())
        finally:
            await rest.close()
            await grpc.close()
        return by_rest, by_grpc

    by_rest, by_grpc = asyncio.run(call())
    for response in (by_rest, by_grpc):
        np.testing.assert_allclose(
            response.get_output_by_name("churn_probability").as_numpy(), expected[:10], rtol=1e-12
        )
    assert by_grpc.model_version == "1"  # InferResponse.from_rest drops model_version; the JSON has it


def test_v1_instances(churn_service: LocalService, rows: list[dict[str, Any]], expected: np.ndarray) -> None:
    url = f"{churn_service.config.transformer_url}/v1/models/{NAME}:predict"
    answer = requests.post(url, json={"instances": rows[:5]}, timeout=10).json()
    got = [p["churn_probability"] for p in answer["predictions"]]
    np.testing.assert_allclose(got, expected[:5], rtol=1e-12)
    assert answer["predictions"][0]["customer_id"] == rows[0]["customer_id"]


def _mutate(rows: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    first = dict(rows[0])
    for key, value in changes.items():
        if value is ...:
            del first[key]
        else:
            first[key] = value
    return [first, *rows[1:3]]


BAD_RECORDS = [
    ({"age": ...}, "missing field(s) 'age'"),
    ({"loyalty": 3}, "unknown field(s) 'loyalty'"),
    ({"total_orders": "many"}, "'total_orders' in row 0 must be a number"),
    ({"total_returns": -2}, "'total_returns' in row 0 is -2"),
    ({"support_tickets_90d": 1.5}, "must be a whole number"),
    ({"total_spend": None}, "'total_spend' in row 0 is missing"),
    ({"country": 7}, "'country' in row 0 must be a string"),
    ({"snapshot_date": "yesterday"}, "expected a date as YYYY-MM-DD"),
    ({"signup_date": "2030-01-01"}, "signup_date 2030-01-01 after snapshot_date"),
]


@pytest.mark.parametrize(("change", "message"), BAD_RECORDS)
def test_bad_records_get_400_naming_the_field(
    churn_service: LocalService, rows: list[dict[str, Any]], change: dict[str, Any], message: str
) -> None:
    url = f"{churn_service.config.transformer_url}/v1/models/{NAME}:predict"
    response = requests.post(url, json={"instances": _mutate(rows, **change)}, timeout=10)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_bad_requests_get_400_and_are_counted(churn_service: LocalService, rows: list[dict[str, Any]]) -> None:
    base = churn_service.config.transformer_url
    v2 = f"{base}/v2/models/{NAME}/infer"
    text_spend = column_tensors(rows[:2])
    text_spend[4]["data"] = ["x", "y"]  # total_spend as text in an FP64 tensor
    cases: list[tuple[Any, str]] = [
        (b"{not json", "the request body is not valid JSON"),
        ({"inputs": "x"}, "malformed request"),
        ({"inputs": []}, "missing field(s)"),
        ({"inputs": [{"name": "records", "datatype": "BYTES", "shape": [0], "data": []}]}, "empty batch"),
        ({"inputs": [{"name": "records", "datatype": "BYTES", "shape": [1], "data": ["[1, 2]"]}]}, "JSON object"),
        ({"inputs": [{"name": "records", "datatype": "BYTES", "shape": [3], "data": ["{}"]}]}, "shape"),
        ({"inputs": text_spend}, "'total_spend'"),
        ({"inputs": column_tensors(rows[:2])[:-3]}, "missing field(s)"),
    ]
    before = metric(base, 'churn_input_validation_failures_total{reason="malformed_request"}')
    for body, message in cases:
        if isinstance(body, bytes):
            response = requests.post(v2, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        else:
            response = requests.post(v2, json=body, timeout=10)
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["error"], response.text
    too_many = [rows[0]] * (churn_service.config.max_batch_size + 1)
    response = requests.post(f"{base}/v1/models/{NAME}:predict", json={"instances": too_many}, timeout=30)
    assert response.status_code == 400 and "limit is 2000" in response.json()["error"]
    assert metric(base, 'churn_input_validation_failures_total{reason="malformed_request"}') >= before + 2


def test_metrics_exposes_latency_predictions_and_model_info(
    churn_service: LocalService, rows: list[dict[str, Any]]
) -> None:
    base = churn_service.config.transformer_url
    scored = sum(metric(base, f'churn_predictions_total{{label="{label}"}}') for label in ("churned", "retained"))
    predict_records(base, NAME, rows[:7])
    after = sum(metric(base, f'churn_predictions_total{{label="{label}"}}') for label in ("churned", "retained"))
    assert after == scored + 7
    text = requests.get(f"{base}/metrics", timeout=5).text
    assert f'request_preprocess_seconds_count{{model_name="{NAME}"}}' in text
    assert 'churn_prediction_probability_bucket{le="0.05",model_version="1"}' in text
    assert metric(base, 'churn_request_duration_seconds_count{model_version="1"}') >= 1
    assert f'churn_model_info{{family="xgboost",model_name="{NAME}",model_version="1"}} 1.0' in text
    assert 'churn_request_errors_total{model_version="1"} 0.0' in text
    predictor = requests.get(f"{churn_service.config.predictor_url}/metrics", timeout=5).text
    assert f'request_predict_seconds_count{{model_name="{NAME}"}}' in predictor
    # No log line per request (without --log_requests): the counts and latencies are here instead.
    for role in ("predictor", "transformer"):
        log = (churn_service.config.log_dir / f"{role}.log").read_text()
        assert "grpc method" not in log and "kserve.trace" not in log and '"POST /v2' not in log, role


def test_rest_path_to_predictor_gives_the_same_answers(
    served_champion: ServedChampion, rows: list[dict[str, Any]], expected: np.ndarray, tmp_path: Path
) -> None:
    """--predictor_protocol v2 (REST between transformer and predictor) as the alternative to gRPC."""
    config = ServiceConfig.on_free_ports(
        "models:/churn-model/1",
        tracking_uri=served_champion.tracking_uri,
        predictor_protocol="v2",
        log_dir=tmp_path,
    )
    with LocalService(config).start(timeout=120):
        answer = predict_records(config.transformer_url, NAME, rows[:25])
    np.testing.assert_allclose([r["churn_probability"] for r in answer_rows(answer)], expected[:25], rtol=1e-12)


def test_a_taken_port_fails_fast_with_a_clear_error(churn_service: LocalService, tmp_path: Path) -> None:
    from churn.errors import ChurnError

    taken = churn_service.config.transformer_http_port
    config = ServiceConfig.on_free_ports(
        "models:/churn-model@champion",
        transformer_http_port=taken,
        log_dir=tmp_path,
    )
    with pytest.raises(ChurnError, match=f"port {taken} .* already in use"):
        LocalService(config).start(timeout=10)


def test_the_servers_are_forks_of_one_preloaded_process(churn_service: LocalService) -> None:
    """churn.forkserver: both servers share a parent that imported their stack once (not this process)."""
    processes = list(churn_service.processes.values())
    assert len(processes) == 2 and all(isinstance(process, ForkedProcess) for process in processes)
    parents = {int(Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for process in processes}
    assert len(parents) == 1 and os.getpid() not in parents
    assert b"churn.forkserver" in Path(f"/proc/{parents.pop()}/cmdline").read_bytes()
    assert all(os.getsid(process.pid) == process.pid for process in processes)  # each its own session


ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "scripts" / "examples"


def _readme_curl_commands() -> list[str]:
    """The curl lines of docs/serving.md's examples, continuation lines joined, exactly as written."""
    text = (ROOT / "docs" / "serving.md").read_text().replace("\\\n", " ")
    block = text[text.index("Three shapes carry the same records") :]
    block = block[block.index("```bash") + len("```bash") : block.index("```", block.index("```bash") + 7)]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("curl ")]


def test_readme_curl_lines_work_verbatim(churn_service: LocalService) -> None:
    """Each curl line of docs/serving.md, run by a shell from the checkout, against the running transformer."""
    commands = _readme_curl_commands()
    assert len(commands) == 6
    reasons = 0
    address = f"{churn_service.config.host}:{churn_service.config.transformer_http_port}"
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command.replace("localhost:8080", address)], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stderr)
        for answer in done.stdout.replace("}{", "}\n{").splitlines():
            body = json.loads(answer)
            assert "error" not in body, (command, body)
            if "predictions" in body or ("outputs" in body and "id" in body):  # answers, not metadata
                answers = body["predictions"] if "predictions" in body else answer_rows(body)
                assert [a["customer_id"] for a in answers] == ["C-1001", "C-1002"]
                assert answers[1]["churn_probability"] > answers[0]["churn_probability"]  # the lapsed customer
                if "churn_reasons" in answers[0]:  # V2 gives JSON text per row, explain gives the objects
                    found = [json.loads(a) if isinstance(a, str) else a for a in (x["churn_reasons"] for x in answers)]
                    assert all(len(r) == 3 and " → " in r[0]["text"] for r in found)
                    reasons += 1
    assert reasons == 2  # the churn_reasons request and the explain request


def test_churn_predict_cli(churn_service: LocalService, tmp_path: Path) -> None:
    url = churn_service.config.transformer_url
    command = [sys.executable, "-m", "churn", "predict", "--url", url, "--json"]
    done = subprocess.run([*command, "--file", str(EXAMPLES / "records.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["customer_id"] for line in lines] == ["C-1001", "C-1002"]
    assert all(0 <= line["churn_probability"] <= 1 and line["model_version"] == "1" for line in lines)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"age": 40}]')
    refused = subprocess.run([*command, "--file", str(bad)], capture_output=True, text=True)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "refused the request (400)" in refused.stderr and "missing field(s)" in refused.stderr


def test_a_dead_predictor_gives_503_and_the_transformer_keeps_serving(
    own_service_config: ServiceConfig, rows: list[dict[str, Any]]
) -> None:
    config = own_service_config
    with LocalService(config).start(timeout=120) as service:
        service.processes["predictor"].kill()
        service.processes["predictor"].wait()
        url = f"{config.transformer_url}/v2/models/{NAME}/infer"
        response = requests.post(url, data=(EXAMPLES / "v2-records.json").read_bytes(), timeout=30)
        assert response.status_code == 503
        assert "the predictor did not answer (UNAVAILABLE" in response.json()["error"]
        assert requests.get(f"{config.transformer_url}/v2/health/live", timeout=5).status_code == 200
        assert metric(config.transformer_url, "churn_request_errors_total") == 1.0
        bad = requests.post(url, json={"inputs": []}, timeout=10)
        assert bad.status_code == 400  # input errors are still found before the predictor is needed


def test_a_missing_model_fails_start_with_one_clear_line(served_champion: ServedChampion, tmp_path: Path) -> None:
    from churn.errors import ChurnError

    config = ServiceConfig.on_free_ports(
        "models:/churn-model@nonexistent",
        tracking_uri=served_champion.tracking_uri,
        log_dir=tmp_path,
    )
    with pytest.raises(ChurnError, match="the predictor exited with code 1") as caught:
        LocalService(config).start(timeout=60)
    assert "cannot resolve models:/churn-model@nonexistent" in str(caught.value)
    assert "Traceback" not in str(caught.value)
