"""The serving image as KServe runs it: predictor and transformer containers, called by V2 clients.

For each of the four model families: a champion's model directory laid out as KServe's
storage initializer leaves it (the logged MLflow model's files in ``/mnt/models``, mounted
read-only); the predictor started with the command, args, env and securityContext that
``helm template`` renders for the chart's ServingRuntime, the transformer with those of the
InferenceService's transformer (read from the rendered chart, not retyped) plus the flags
KServe's controller adds (``--model_name``, ``--predictor_host``, ``--http_port``); the
transformer reaches the predictor over grpc-v2 at the predictor container's address, as it
reaches the predictor Service in a cluster. tritonclient (REST binary tensors and gRPC) must
get the probabilities in-process scoring gives, so a library missing from the image in any
family fails here. The single-pass runtime (``serving.mode=single``) runs in the same image
and must give the same probabilities.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from churn.data import generate_customers
from churn.serving.local import free_port
from churn.training import FAMILIES, ChurnModel, split_frame, train_family

pytestmark = pytest.mark.images
Engine = Images = Any  # conftest.Engine, conftest.Images (tests are not a package)
ROOT = Path(__file__).resolve().parents[2]
# The request builders and the tritonclient gRPC script the serving integration tests use.
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from serving_helpers import column_tensors, records  # noqa: E402

TRITON_GRPC = ROOT / "tests" / "integration" / "clients" / "triton_grpc.py"
RELEASE = "churn"
ROWS = 200


def _render_chart(*values: str) -> list[dict[str, Any]]:
    helm = ROOT / ".tools" / "k8s" / "helm"
    if not helm.exists():
        subprocess.run(["bash", "scripts/install_helm.sh"], cwd=ROOT, check=True, capture_output=True)
    done = subprocess.run(
        [str(helm), "template", RELEASE, str(ROOT / "helm" / "churn-mlops"), "--namespace", "ml", *values],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@dataclass(frozen=True)
class Rendered:
    """The two containers of the rendered InferenceService, as KServe would start them."""

    isvc_name: str
    predictor: dict[str, Any]
    transformer: dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    objects = _render_chart()
    isvc = next(o for o in objects if o["kind"] == "InferenceService")
    runtime = next(o for o in objects if o["kind"] == "ServingRuntime")
    assert isvc["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]
    (predictor,) = runtime["spec"]["containers"]
    (transformer,) = isvc["spec"]["transformer"]["containers"]
    return Rendered(isvc["metadata"]["name"], predictor, transformer)


def _security_flags(container: dict[str, Any]) -> list[str]:
    """`podman run` flags for a container's securityContext (the chart sets every one of these)."""
    context = container["securityContext"]
    flags = ["--user", f"{context['runAsUser']}:{context['runAsUser']}"]
    if context.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if "ALL" in context.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", "ALL"]
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    return flags


#: What the rendered Secret references resolve to when a test gives no real ones (the S3 endpoint
#: the chart names is not reachable here: the log's writes fail, are counted and never fail a request).
DUMMY_SECRETS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


def _run_flags(
    container: dict[str, Any], image: str, extra_args: list[str], secrets: dict[str, str] = DUMMY_SECRETS
) -> list[str]:
    """`podman run` arguments for a rendered container: its image, command, args, env and limits.

    An env var read from a Secret (``valueFrom.secretKeyRef``) gets ``secrets[<key>]``.
    """
    flags = _security_flags(container)
    for item in container.get("env", []):
        value = item["value"] if "value" in item else secrets[item["valueFrom"]["secretKeyRef"]["key"]]
        flags += ["--env", f"{item['name']}={value}"]
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        flags += ["--memory", limits["memory"].replace("Gi", "g").replace("Mi", "m")]
    command = container["command"]
    assert container["image"] == image, "the chart must run the image the build script builds"
    return [*flags, "--entrypoint", command[0], image, *command[1:], *container["args"], *extra_args]


@dataclass(frozen=True)
class Champion:
    family: str
    model: ChurnModel
    model_dir: Path


@pytest.fixture(scope="module")
def fresh_rows() -> pd.DataFrame:
    return generate_customers(ROWS, "2026-03-02", seed=404).frame


@pytest.fixture(scope="module")
def champions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Champion]:
    """Each family trained on a small sample, logged to MLflow and downloaded as KServe would."""
    import mlflow

    from churn.registry.mlflow_registry import connect, log_candidate
    from churn.registry.model_dir import load_model_dir

    root = tmp_path_factory.mktemp("serving-image-models")
    connect(f"sqlite:///{root}/mlflow.db", experiment="serving-image", artifact_location=(root / "artifacts").as_uri())
    parts = split_frame(generate_customers(4_000, "2026-01-05", seed=31).frame, seed=5)
    out = {}
    for family in FAMILIES:
        params = {
            "logistic_regression": {"C": 1.0},
            "random_forest": {"n_estimators": 30, "max_depth": 6},
            "xgboost": {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1, "early_stopping_rounds": 10},
            "lightgbm": {"n_estimators": 60, "num_leaves": 15, "learning_rate": 0.1, "early_stopping_rounds": 10},
        }[family]
        trained = train_family(family, parts["train"], parts["validation"], params, n_jobs=2, seed=1)
        with mlflow.start_run():
            model_uri = log_candidate(trained, example=parts["test"].head(3), metrics={}, tags={})
        # The storage initializer copies the model's artifact folder into /mnt/models.
        model_dir = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(root / family)))
        for path in [model_dir, *model_dir.rglob("*")]:  # readable by the servers' uid 10001
            path.chmod(0o755 if path.is_dir() else 0o644)
        out[family] = Champion(family, load_model_dir(model_dir), model_dir)
    return out


@dataclass(frozen=True)
class Served:
    transformer_http: str
    transformer_grpc: str
    predictor_log: str


def _address(engine: Engine, container: str) -> str:
    info = json.loads(engine.run("inspect", container).stdout)[0]
    networks = info["NetworkSettings"].get("Networks") or {}
    address = info["NetworkSettings"].get("IPAddress") or next(iter(networks.values()))["IPAddress"]
    assert address, f"no address for {container}"
    return str(address)


@pytest.fixture(scope="module", params=FAMILIES)
def served(
    request: pytest.FixtureRequest, engine: Engine, images: Images, rendered: Rendered, champions: dict[str, Champion]
) -> Iterator[tuple[Champion, Served]]:
    champion = champions[request.param]
    name = f"churn-test-{request.param.replace('_', '-')}-{free_port()}"
    mount = ["--volume", f"{champion.model_dir}:/mnt/models:ro"]
    ports = {c: free_port() for c in ("http", "grpc")}
    started = []
    try:
        predictor_args = [arg.replace("{{.Name}}", rendered.isvc_name) for arg in rendered.predictor["args"]]
        predictor = {**rendered.predictor, "args": predictor_args}
        engine.run("run", "-d", "--name", f"{name}-predictor", *mount, *_run_flags(predictor, images.serving, []))
        started.append(f"{name}-predictor")
        host = _address(engine, f"{name}-predictor")
        engine.wait_ready(f"{name}-predictor", f"http://{host}:8080/v2/models/{rendered.isvc_name}/ready", 90)
        grpc_port = next(p["containerPort"] for p in rendered.predictor["ports"] if p["name"] == "h2c")
        # What KServe's controller adds to a transformer container.
        added = [f"--model_name={rendered.isvc_name}", f"--predictor_host={host}:{grpc_port}", "--http_port=8080"]
        publish = ["--publish", f"127.0.0.1:{ports['http']}:8080", "--publish", f"127.0.0.1:{ports['grpc']}:8081"]
        engine.run(
            "run", "-d", "--name", f"{name}-transformer", *mount, *publish,
            *_run_flags(rendered.transformer, images.serving, added),
        )  # fmt: skip
        started.append(f"{name}-transformer")
        url = f"http://127.0.0.1:{ports['http']}"
        engine.wait_ready(f"{name}-transformer", f"{url}/v2/models/{rendered.isvc_name}/ready", 90)
        logs = engine.run("logs", f"{name}-predictor", check=False)
        yield champion, Served(f"127.0.0.1:{ports['http']}", f"127.0.0.1:{ports['grpc']}", logs.stdout + logs.stderr)
    finally:
        for container in started:
            engine.run("rm", "-f", "-t", "2", container, check=False)


def test_each_family_serves_in_the_image_with_in_process_probabilities(
    served: tuple[Champion, Served], rendered: Rendered, fresh_rows: pd.DataFrame
) -> None:
    import tritonclient.http as httpclient

    champion, endpoints = served
    rows = records(fresh_rows)
    expected = champion.model.predict_proba(fresh_rows)

    client = httpclient.InferenceServerClient(url=endpoints.transformer_http)
    assert client.is_server_ready() and client.is_model_ready(rendered.isvc_name)
    inputs = []
    for tensor in column_tensors(rows):
        if tensor["datatype"] == "BYTES":  # a missing category is an empty string (None would be "None")
            values = np.array([b"" if v is None else str(v).encode() for v in tensor["data"]], dtype=np.object_)
        else:
            values = np.asarray(tensor["data"], dtype=np.float64)
        item = httpclient.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        item.set_data_from_numpy(values, binary_data=True)
        inputs.append(item)
    result = client.infer(rendered.isvc_name, inputs)
    np.testing.assert_allclose(result.as_numpy("churn_probability"), expected, rtol=1e-12, atol=1e-15)
    labels = result.as_numpy("churn_label")
    np.testing.assert_array_equal(labels, (expected >= champion.model.threshold).astype(labels.dtype))

    spec = json.dumps(
        {"url": endpoints.transformer_grpc, "model": rendered.isvc_name, "inputs": column_tensors(rows[:50])}
    )
    done = subprocess.run(
        [sys.executable, str(TRITON_GRPC)], input=spec, capture_output=True, text=True, timeout=60, check=True
    )
    answer = json.loads(done.stdout)
    assert "error" not in answer, answer
    np.testing.assert_allclose(answer["outputs"]["churn_probability"], expected[:50], rtol=1e-12, atol=1e-15)

    base = f"http://{endpoints.transformer_http}/v2/models/{rendered.isvc_name}"
    with urllib.request.urlopen(base, timeout=10) as response:
        assert json.loads(response.read())["name"] == rendered.isvc_name
    # A caller's mistake is a 400 naming the field, from the image as from the library.
    tensors = column_tensors(rows[:2])
    next(t for t in tensors if t["name"] == "age")["data"] = [-5.0, 40.0]
    request = urllib.request.Request(
        f"{base}/infer", data=json.dumps({"inputs": tensors}).encode(), headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "age" in json.loads(refused.value.read())["error"]


def test_the_single_pass_runtime_serves_in_the_image_as_the_transformer_path_does(
    engine: Engine, images: Images, champions: dict[str, Champion], fresh_rows: pd.DataFrame
) -> None:
    """``serving.mode=single``: the rendered churn-single runtime, the model's args and env merged as KServe does."""
    objects = _render_chart("--set", "serving.mode=single")
    isvc = next(o for o in objects if o["kind"] == "InferenceService")
    assert "transformer" not in isvc["spec"]
    model = isvc["spec"]["predictor"]["model"]
    runtime = next(o for o in objects if o["metadata"]["name"] == model["runtime"])
    (container,) = runtime["spec"]["containers"]
    name = isvc["metadata"]["name"]
    merged = {
        **container,
        "args": [arg.replace("{{.Name}}", name) for arg in container["args"]] + model.get("args", []),
        "env": container["env"] + model.get("env", []),
    }
    champion = champions["xgboost"]
    port, box = free_port(), f"churn-test-single-{free_port()}"
    mount = ["--volume", f"{champion.model_dir}:/mnt/models:ro"]
    try:
        engine.run(
            "run", "-d", "--name", box, *mount, "--publish", f"127.0.0.1:{port}:8080",
            *_run_flags(merged, images.serving, []),
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        engine.wait_ready(box, f"{base}/v2/models/{name}/ready", 90)
        rows = records(fresh_rows)
        body = {"instances": rows}
        request = urllib.request.Request(
            f"{base}/v1/models/{name}:predict", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        probabilities = [p["churn_probability"] for p in answer["predictions"]]
        np.testing.assert_allclose(probabilities, champion.model.predict_proba(fresh_rows), rtol=1e-12, atol=1e-15)
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            exposed = response.read().decode()
        counted = sum(
            float(line.split()[-1]) for line in exposed.splitlines() if line.startswith("churn_predictions_total{")
        )
        assert counted == len(rows)
    finally:
        engine.run("rm", "-f", "-t", "2", box, check=False)


def test_the_images_transformer_logs_every_answer_where_the_chart_says_and_monitoring_reads_it_back(
    engine: Engine,
    images: Images,
    champions: dict[str, Champion],
    fresh_rows: pd.DataFrame,
    s3_endpoint: str,
    s3_bucket: str,
    aws_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chart's default (the log on, to S3 as its user) in the stock image, then the same to a folder.

    The containers share the host's network so that the transformer reaches the S3 endpoint
    (moto on loopback) at the address the chart renders from ``s3.endpoint``; each server gets
    free ports. A SIGTERM (``podman stop``) flushes what is queued.
    """
    from churn.predictions.log import read_prediction_log

    champion = champions["logistic_regression"]
    prefix = f"s3://{s3_bucket}/image-predictions-{free_port()}/"
    host_port = s3_endpoint.removeprefix("http://")
    objects = _render_chart("--set", f"s3.endpoint={host_port}", "--set", f"performance.predictionLogUri={prefix}")
    isvc = next(o for o in objects if o["kind"] == "InferenceService")
    runtime = next(o for o in objects if o["kind"] == "ServingRuntime")
    (transformer,) = isvc["spec"]["transformer"]["containers"]
    (predictor,) = runtime["spec"]["containers"]
    assert f"--prediction_log={prefix}" in transformer["args"]  # on by default, where the chart's settings say
    name, model = f"churn-test-log-{free_port()}", isvc["metadata"]["name"]
    mount = ["--volume", f"{champion.model_dir}:/mnt/models:ro"]
    ports = {k: free_port() for k in ("p_http", "p_grpc", "t_http", "t_grpc")}
    rows = records(fresh_rows.head(20))
    started: list[str] = []

    def serve_and_send(tag: str, rendered: dict[str, Any], extra: list[str], volume: list[str]) -> list[str]:
        added = [f"--model_name={model}", f"--predictor_host=127.0.0.1:{ports['p_grpc']}"]
        added += [f"--http_port={ports['t_http']}", f"--grpc_port={ports['t_grpc']}", *extra]
        flags = _run_flags(rendered, images.serving, added, secrets=aws_env)
        container = f"{name}-{tag}"
        engine.run("run", "-d", "--name", container, "--network", "host", *mount, *volume, *flags)
        started.append(container)
        url = f"http://127.0.0.1:{ports['t_http']}/v2/models/{model}"
        engine.wait_ready(container, f"{url}/ready", 90)
        ids = []
        for i in range(0, len(rows), 5):
            ids.append(f"{tag}-request-{i}")
            batch = [json.dumps(r) for r in rows[i : i + 5]]  # the records input: one JSON object per customer
            inputs = [{"name": "records", "datatype": "BYTES", "shape": [len(batch)], "data": batch}]
            body = json.dumps({"id": ids[-1], "inputs": inputs}).encode()
            request = urllib.request.Request(f"{url}/infer", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
        engine.run("stop", "-t", "20", container)  # SIGTERM: the queued answers are flushed
        logs = engine.logs(container)
        assert "Traceback" not in logs and "dropped" not in logs, logs
        return ids

    try:
        args = [a.replace("{{.Name}}", model) for a in predictor["args"]]
        args += [f"--http_port={ports['p_http']}", f"--grpc_port={ports['p_grpc']}"]
        engine.run(
            "run", "-d", "--name", f"{name}-predictor", "--network", "host", *mount,
            *_run_flags({**predictor, "args": args}, images.serving, []),
        )  # fmt: skip
        started.append(f"{name}-predictor")
        engine.wait_ready(f"{name}-predictor", f"http://127.0.0.1:{ports['p_http']}/v2/models/{model}/ready", 90)
        customers = [r["customer_id"] for r in rows]
        expected = champion.model.predict_proba(fresh_rows.head(20))

        sent = serve_and_send("s3", transformer, [], [])
        for key, value in {**aws_env, "AWS_ENDPOINT_URL": s3_endpoint}.items():
            monkeypatch.setenv(key, value)
        logged = read_prediction_log(prefix)
        assert sorted(set(logged["request_id"])) == sorted(sent) and logged["customer_id"].tolist() == customers
        np.testing.assert_allclose(logged["churn_probability"], expected, rtol=1e-12)
        assert set(logged["source"]) == {"online"} and set(logged["model_name"]) == {model}

        folder = tmp_path / "log"
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)  # written by the container's uid 10001
        local = {**transformer, "args": [a for a in transformer["args"] if not a.startswith("--prediction_log")]}
        sent = serve_and_send("folder", local, ["--prediction_log=/log"], ["--volume", f"{folder}:/log"])
        logged = read_prediction_log(folder)
        assert sorted(set(logged["request_id"])) == sorted(sent) and logged["customer_id"].tolist() == customers
        assert [p.suffixes[-2:] for p in folder.glob("date=*/*")] == [[".jsonl", ".gz"]] * len(
            list(folder.glob("date=*/*"))
        )
    finally:
        for container in started:
            engine.run("rm", "-f", "-t", "2", container, check=False)
