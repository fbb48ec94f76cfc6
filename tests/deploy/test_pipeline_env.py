"""The compiled pipelines and the chart agree on what a task reads in a cluster.

Every task of every compiled pipeline takes the S3 Secret and the chart's pipeline-env
ConfigMap as environment variables, named by pipeline parameters; the chart renders every
key the pipelines ask for; and a deploy step reading that ConfigMap builds the chart's own
InferenceService, whatever the release is called. No KFP backend runs here: this checks
the compiled YAML a backend would execute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipelines._cluster import (
    CLUSTER_ENV,
    CLUSTER_ENV_KEYS,
    GATE_KEYS,
    MLFLOW_KEYS,
    PUSHGATEWAY_KEYS,
    S3_KEYS,
    S3_SECRET,
)
from test_chart import render
from test_deploy import STORAGE, assert_same_serving

from churn import __version__
from churn.config import RolloutSettings, Settings
from churn.deploy import ServingTarget, inference_service
from churn.kfp.catalog import PIPELINES
from churn.kfp.packages import COMPILED_DIR, write_packaged_pipeline

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]


def PARAM(name: str) -> tuple[str, str]:  # noqa: N802 (reads as a constant in the assertions)
    return (name, f"pipelinechannel--{name}")


def _compiled(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = yaml.safe_load_all((COMPILED_DIR / f"{name}_pipeline.yaml").read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


#: The MLflow user each pipeline's tasks run as (the data pipeline does not talk to MLflow).
MLFLOW_USER = {"training": "mlflow_secret", "monitoring": "mlflow_secret", "scoring": "mlflow_secret", "data": None}
GATE = ("gate_secret", GATE_KEYS)
PUSHGATEWAY = ("pushgateway_secret", PUSHGATEWAY_KEYS)
#: Tasks that get more identities: (pipeline, task) -> [(parameter naming the Secret, its keys as env)].
EXTRA_IDENTITY = {
    ("training", "promote-model"): [GATE],
    # A rollback moves @champion back as the gate's user; the rollout pushes its metrics.
    ("training", "deploy-model"): [GATE, PUSHGATEWAY],
    ("monitoring", "validate-current"): [PUSHGATEWAY],
    ("monitoring", "check-drift"): [PUSHGATEWAY],
    ("monitoring", "check-performance"): [PUSHGATEWAY],
    ("monitoring", "compare-shadow"): [PUSHGATEWAY],  # pushes churn_shadow_*
    ("scoring", "validate-base"): [PUSHGATEWAY],
    ("scoring", "score-base"): [PUSHGATEWAY],
    ("scoring", "publish-scored"): [PUSHGATEWAY],
}


@pytest.mark.parametrize("name", PIPELINES)
def test_every_task_reads_the_secret_and_the_configmap_named_by_parameters(name: str) -> None:
    spec, executors = _compiled(name)
    assert set(executors) == set(spec["deploymentSpec"]["executors"]), "a task without the cluster env"
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["s3_secret"]["defaultValue"] == S3_SECRET
    assert inputs["cluster_env"]["defaultValue"] == CLUSTER_ENV
    extras = 0
    for executor, config in executors.items():
        s3, *identities = config["secretAsEnv"]
        # Inside a dsl.If the root parameter reaches the task as KFP's "pipelinechannel--<name>".
        assert s3["secretNameParameter"]["componentInputParameter"] in PARAM("s3_secret"), executor
        assert {k["secretKey"] for k in s3["keyToEnv"]} == set(S3_KEYS) and not s3["optional"]
        wanted = []
        if MLFLOW_USER[name]:
            wanted.append((MLFLOW_USER[name], {k: k for k in MLFLOW_KEYS}))
        task = executor.removeprefix("exec-")
        if (name, task) in EXTRA_IDENTITY:
            wanted += EXTRA_IDENTITY[name, task]
            extras += 1
        got = [
            (i["secretNameParameter"]["componentInputParameter"], {k["secretKey"]: k["envVar"] for k in i["keyToEnv"]})
            for i in identities
        ]
        assert [(p.removeprefix("pipelinechannel--"), keys) for p, keys in got] == wanted, executor
        # Optional: a release without MLflow auth or a Pushgateway user still starts its tasks.
        assert all(i["optional"] for i in identities)
        (config_map,) = config["configMapAsEnv"]
        assert config_map["configMapNameParameter"]["componentInputParameter"] in PARAM("cluster_env"), executor
        assert [k["configMapKey"] for k in config_map["keyToEnv"]] == list(CLUSTER_ENV_KEYS)
        assert not config_map["optional"]
    assert extras == sum(1 for pipeline, _ in EXTRA_IDENTITY if pipeline == name)


@pytest.mark.parametrize("values", [[], ["--set", "mlflow.enabled=false", "--set", "pushgateway.enabled=false"]])
def test_the_chart_renders_every_key_the_pipelines_read(helm: str, values: list[str]) -> None:
    objects = render(helm, *values, release="prod")
    (env,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "prod-pipeline-env"]
    assert set(env["data"]) == set(CLUSTER_ENV_KEYS)
    (secret,) = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "prod-s3"]
    assert set(secret["stringData"]) == set(S3_KEYS)
    if not values:
        assert env["data"]["CHURN_MLFLOW__TRACKING_URI"] == "http://prod-mlflow.ml.svc:5000"
        assert env["data"]["CHURN_MONITORING__PUSHGATEWAY_URL"] == "http://prod-pushgateway.ml.svc:9091"
        assert env["data"]["AWS_ENDPOINT_URL"] == "http://prod-minio.ml.svc:9000"
    else:  # empty values mean "not here": the pipeline parameters or the defaults decide
        assert env["data"]["CHURN_MLFLOW__TRACKING_URI"] == ""
        assert env["data"]["CHURN_MONITORING__PUSHGATEWAY_URL"] == ""


def test_a_deploy_step_reading_the_configmap_rolls_out_as_the_charts_values_say(
    helm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = ["--set", "rollout.steps={5,25,100}", "--set", "rollout.analysisIntervalSeconds=120"]
    values += ["--set", "rollout.prometheusUrl=http://prometheus.monitoring.svc:9090"]
    values += ["--set-json", "rollout.thresholds.maxLatencyRatio=2.5", "--set", "rollout.thresholds.minRequests=200"]
    objects = render(helm, *values, release="prod")
    (env,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "prod-pipeline-env"]
    for key, value in env["data"].items():
        monkeypatch.setenv(key, value)
    rollout = Settings(_env_file=None).rollout  # type: ignore[call-arg]
    assert rollout.progressive and rollout.steps == [5, 25, 100]
    assert rollout.analysis_interval_seconds == 120 and rollout.deadline_seconds == 3600
    assert rollout.prometheus_url == "http://prometheus.monitoring.svc:9090"
    assert (rollout.max_latency_ratio, rollout.min_requests) == (2.5, 200)
    # The chart's defaults are the settings' defaults.
    for key, value in next(o for o in render(helm, release="prod") if o["metadata"]["name"] == "prod-pipeline-env")[
        "data"
    ].items():
        monkeypatch.setenv(key, value)
    assert Settings(_env_file=None).rollout == RolloutSettings()  # type: ignore[call-arg]


def test_a_deploy_step_reading_the_configmap_builds_the_charts_inference_service(
    helm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = ["--set", "imageRegistry=registry.example.com/ml", "--set", "serving.predictorProtocol=v2"]
    values += ["--set", "serving.maxBatchSize=500", "--set", f"serving.storageUri={STORAGE}"]
    objects = render(helm, *values, "--set-string", "serving.modelVersion=9", release="prod")
    (env,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "prod-pipeline-env"]
    (chart,) = [o for o in objects if o["kind"] == "InferenceService"]
    for key, value in env["data"].items():
        monkeypatch.setenv(key, value)
    target = ServingTarget.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    ours = inference_service(target, STORAGE, model_version="9")
    assert ours["metadata"]["namespace"] == "ml"
    assert_same_serving(ours, chart)
    # By default the transformer logs every answer to the release's bucket, as the write-only log user.
    (transformer,) = ours["spec"]["transformer"]["containers"]
    assert "--prediction_log=s3://mlflow/predictions/" in transformer["args"]
    variables = {e["name"]: e for e in transformer["env"]}
    assert variables["AWS_ENDPOINT_URL"]["value"] == "http://prod-minio.ml.svc:9000"
    secret = variables["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "prod-s3-predlog", "key": "AWS_SECRET_ACCESS_KEY"}
    assert env["data"]["CHURN_PERFORMANCE__PREDICTION_LOG_URI"] == "s3://mlflow/predictions/"
    assert env["data"]["CHURN_PERFORMANCE__LABELS_URI"] == "s3://mlflow/labels/"


def test_the_prediction_log_can_be_turned_off_or_written_with_a_given_secret(helm: str) -> None:
    def transformer_and_env(*values: str) -> tuple[dict[str, Any], dict[str, str]]:
        objects = render(helm, *values, release="prod")
        (isvc,) = [o for o in objects if o["kind"] == "InferenceService"]
        (env,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "prod-pipeline-env"]
        return isvc["spec"]["transformer"]["containers"][0], env["data"]

    off, env = transformer_and_env("--set", "performance.predictionLog=false")
    assert not [a for a in off["args"] if a.startswith("--prediction_log")]
    assert not [e for e in off["env"] if e["name"].startswith("AWS_")]
    assert env["CHURN_SERVING__PREDICTION_LOG_URI"] == ""
    given, env = transformer_and_env("--set", "performance.predictionLogExistingSecret=log-writer")
    keys = {e["valueFrom"]["secretKeyRef"]["name"] for e in given["env"] if "valueFrom" in e}
    assert keys == {"log-writer"} and env["CHURN_DEPLOY__S3_SECRET"] == "log-writer"
    # An external S3 (no MinIO here): the read/write Secret, since the chart cannot create users there.
    external, _ = transformer_and_env("--set", "minio.enabled=false", "--set", "s3.endpoint=s3.example.com")
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in external["env"] if "valueFrom" in e} == {"prod-s3"}


def test_pipelines_compiled_for_another_registry_run_its_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "CHURN_IMAGE_REGISTRY": "registry.example.com/ml"}
    subprocess.run(
        [sys.executable, "-m", "churn", "pipeline", "compile", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    for name in PIPELINES:
        spec = next(yaml.safe_load_all((tmp_path / f"{name}_pipeline.yaml").read_text()))
        images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
        assert images == {f"registry.example.com/ml/churn:{__version__}"}, name
    # A retraining run submits the packaged training pipeline, set to the registry it runs with: the same YAML.
    monkeypatch.setenv("CHURN_IMAGE_REGISTRY", "registry.example.com/ml")
    packaged = write_packaged_pipeline("training", tmp_path / "packaged")
    compiled = (tmp_path / "training_pipeline.yaml").read_text()
    assert list(yaml.safe_load_all(packaged.read_text())) == list(yaml.safe_load_all(compiled))


@pytest.mark.parametrize("enabled", [True, False])
def test_a_task_reading_the_configmap_gets_the_charts_dask_settings(
    helm: str, enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from churn.engine.dask.cluster import make_cluster_spec

    values = ["--set", "imageRegistry=registry.example.com/ml", "--set", f"dask.enabled={str(enabled).lower()}"]
    objects = render(helm, *values, release="prod")
    (env,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "prod-pipeline-env"]
    for key, value in env["data"].items():
        monkeypatch.setenv(key, value)
    dask = Settings(_env_file=None).dask  # type: ignore[call-arg]
    assert dask.kubernetes is enabled
    if enabled:
        # Datasets pass between tasks on the release's bucket: the operator's workers cannot see a task's files.
        assert dask.work_uri == "s3://mlflow/dask-work/"
        spec = make_cluster_spec(dask, name="churn-train")
        assert spec["metadata"]["namespace"] == "ml"
        for role in ("scheduler", "worker"):
            (container,) = spec["spec"][role]["spec"]["containers"]
            assert container["image"] == f"registry.example.com/ml/churn:{__version__}"
    else:  # a run on the Dask engine starts a LocalCluster in its own pod and keeps its data in its folders
        assert not dask.work_uri
