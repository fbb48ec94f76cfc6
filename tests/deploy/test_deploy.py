"""The deploy step: its InferenceService is the chart's, it validates, and rollouts roll back.

There is no Kubernetes API server here: ``apply`` is driven against a recording stand-in
of ``CustomObjectsApi`` (``tests/kube_standin.py``), which plays KServe's status updates.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart import hardening_violations, render, validate

from churn.config import ServingMode
from churn.deploy import (
    CANARY_VERSION,
    STABLE_VERSION,
    ServingTarget,
    apply,
    canary_inference_service,
    inference_service,
    storage_uri,
    write_manifest,
)
from churn.errors import ChurnError
from kube_standin import StandInCustomObjects

pytestmark = pytest.mark.deploy
STORAGE = "s3://mlflow/1/models/m-abc/artifacts"
OLD = "s3://mlflow/old"


@pytest.mark.parametrize("canary", [None, 10])
@pytest.mark.parametrize("mode", ["transformer", "single"])
def test_manifest_is_the_charts_inference_service(helm: str, mode: str, canary: int | None) -> None:
    chart = next(
        o
        for o in render(
            helm,
            "--set",
            f"serving.storageUri={STORAGE}",
            "--set-string",
            "serving.modelVersion=4",
            # ServingTarget() has no log (the settings give it one: test_pipeline_env covers the log's args).
            "--set",
            "performance.predictionLog=false",
            "--set",
            f"serving.mode={mode}",
            *(["--set", f"serving.canaryTrafficPercent={canary}"] if canary is not None else []),
        )
        if o["kind"] == "InferenceService"
    )
    ours = inference_service(
        ServingTarget(namespace="ml", mode=mode), STORAGE, model_version="4", canary_percent=canary
    )
    assert ("transformer" in ours["spec"]) is (mode == "transformer")
    assert_same_serving(ours, chart)
    assert list(validate([ours])) == []
    # The pipeline's InferenceService is as hardened as the chart's (resources are the chart's values only).
    assert list(hardening_violations(ours, resources=False)) == []


def assert_same_serving(ours: dict[str, Any], chart: dict[str, Any]) -> None:
    """Predictor and transformer equal, security included; not what only the chart sets (resources, ports, pulls)."""
    assert set(ours["spec"]) == set(chart["spec"])
    for key in chart["spec"]:
        wanted, got = copy.deepcopy(chart["spec"][key]), copy.deepcopy(ours["spec"][key])
        for spec in (wanted, got):
            for container in spec.get("containers", []):
                for field in ("resources", "ports", "imagePullPolicy"):
                    container.pop(field, None)
        assert got == wanted, key


def test_canary_manifest_validates() -> None:
    manifest = inference_service(ServingTarget(), STORAGE, model_version="5", canary_percent=10)
    assert manifest["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert list(validate([manifest])) == []


@pytest.mark.parametrize("mode", ["transformer", "single"])
@pytest.mark.parametrize("deployment_mode", ["Serverless", "RawDeployment"])
def test_canary_manifests_of_both_deployment_modes_validate(mode: ServingMode, deployment_mode: str) -> None:
    target = ServingTarget(mode=mode, deployment_mode=deployment_mode)
    manifest = canary_inference_service(
        target, STORAGE, model_version="5", stable_storage=OLD, stable_version="4", percent=10
    )
    assert list(validate([manifest])) == []
    assert list(hardening_violations(manifest, resources=False)) == []
    annotations = manifest["metadata"]["annotations"]
    assert (annotations[STABLE_VERSION], annotations[CANARY_VERSION]) == ("4", "5")
    spec, new = manifest["spec"], inference_service(target, STORAGE, model_version="5")["spec"]
    if deployment_mode == "Serverless":  # one spec, the new model's; every component splits its traffic
        assert "canary" not in spec
        assert {key: c.pop("canaryTrafficPercent") for key, c in spec.items()} == dict.fromkeys(new, 10)
        # The canary revision's front door (transformer, or the single-pass predictor) logs as variant canary.
        front = spec["transformer"]["containers"][0] if mode == "transformer" else spec["predictor"]["model"]
        assert front["args"].pop() == "--variant=canary"
        assert spec == new
    else:  # the stable spec stays; the canary entry is the new model's predictor
        new["predictor"]["model"]["name"] = target.name  # the CRD requires it; the V2 path stays the service's
        assert spec["canary"] == [{"predictor": new["predictor"], "trafficPercent": 10}]
        assert {k: v for k, v in spec.items() if k != "canary"} == inference_service(target, OLD, model_version="4")[
            "spec"
        ]
        assert ("transformer" in spec) is (mode == "transformer")


def test_only_s3_artifacts_can_be_served() -> None:
    assert storage_uri(STORAGE + "/") == STORAGE
    with pytest.raises(ChurnError, match="not in S3"):
        storage_uri("mlflow-artifacts:/1/models/m-abc/artifacts")


def test_without_a_cluster_the_manifest_is_written(tmp_path: Path) -> None:
    manifest = inference_service(ServingTarget(), STORAGE, model_version="3")
    rollout = write_manifest(manifest, tmp_path / "inferenceservice.yaml")
    assert not rollout.applied and "no cluster" in rollout.message
    assert yaml.safe_load((tmp_path / "inferenceservice.yaml").read_text()) == manifest
    assert not list(tmp_path.glob(".*tmp*"))


def test_first_rollout_creates_and_waits_for_ready() -> None:
    api = StandInCustomObjects()
    rollout = apply(inference_service(ServingTarget(), STORAGE, model_version="1"), api, timeout=5, poll=0)
    assert rollout.ready and [c[0] for c in api.calls] == ["create"]


def test_new_champion_patches_the_existing_service() -> None:
    old = inference_service(ServingTarget(), "s3://mlflow/old", model_version="1")
    api = StandInCustomObjects(existing=old)
    rollout = apply(inference_service(ServingTarget(), STORAGE, model_version="2"), api, timeout=5, poll=0)
    assert rollout.ready and [c[0] for c in api.calls] == ["patch"]
    assert api.objects["churn-model"]["spec"]["predictor"]["model"]["storageUri"] == STORAGE


def test_a_canary_that_never_gets_ready_goes_back_to_zero_percent() -> None:
    old = inference_service(ServingTarget(), "s3://mlflow/old", model_version="1")
    api = StandInCustomObjects(existing=old, ready_after=None)
    canary = inference_service(ServingTarget(), STORAGE, model_version="2", canary_percent=20)
    with pytest.raises(ChurnError, match="not Ready after 0s; rolled back"):
        apply(canary, api, timeout=0.05, poll=0.01)
    assert api.calls[-1] == ("patch", {"spec": {"predictor": {"canaryTrafficPercent": 0}}})


def test_a_full_rollout_that_fails_gets_the_previous_model_back() -> None:
    old = inference_service(ServingTarget(), "s3://mlflow/old", model_version="1")
    api = StandInCustomObjects(existing=old, ready_after=None)
    with pytest.raises(ChurnError, match="rolled back to the previous model"):
        apply(inference_service(ServingTarget(), STORAGE, model_version="2"), api, timeout=0.05, poll=0.01)
    assert api.objects["churn-model"]["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/old"


def test_switching_to_single_pass_mode_removes_the_transformer_and_a_failed_switch_brings_it_back() -> None:
    old = inference_service(ServingTarget(), "s3://mlflow/old", model_version="1")
    single = inference_service(ServingTarget(mode="single"), STORAGE, model_version="2")
    api = StandInCustomObjects(existing=old)
    assert apply(single, api, timeout=5, poll=0).ready
    assert api.objects["churn-model"]["spec"] == single["spec"]  # no transformer left behind by the merge
    assert api.calls[-1][1]["spec"]["transformer"] is None
    api = StandInCustomObjects(existing=old, ready_after=None)
    with pytest.raises(ChurnError, match="rolled back to the previous model"):
        apply(single, api, timeout=0.05, poll=0.01)
    assert api.objects["churn-model"]["spec"] == old["spec"]
    back = StandInCustomObjects(existing=single)
    assert apply(old, back, timeout=5, poll=0).ready and back.objects["churn-model"]["spec"] == old["spec"]


def test_the_single_pass_manifest_carries_the_prediction_log_on_its_model() -> None:
    target = ServingTarget(
        mode="single", prediction_log_uri="s3://mlflow/predictions/", s3_endpoint="http://minio:9000"
    )
    model = inference_service(target, STORAGE, model_version="3")["spec"]["predictor"]["model"]
    assert model["runtime"] == "churn-single" and model["protocolVersion"] == "v2"
    assert model["args"] == ["--model_version=3", "--prediction_log=s3://mlflow/predictions/"]
    assert {e["name"] for e in model["env"]} == {
        "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
    }  # fmt: skip
    assert list(validate([inference_service(target, STORAGE, model_version="3")])) == []


def test_a_standard_canary_waits_for_its_entry_and_a_failed_one_loses_its_entry() -> None:
    old = inference_service(ServingTarget(), OLD, model_version="1")
    canary = canary_inference_service(
        ServingTarget(), STORAGE, model_version="2", stable_storage=OLD, stable_version="1", percent=10
    )
    api = StandInCustomObjects(existing=old)
    assert apply(canary, api, timeout=5, poll=0).ready
    assert api.objects["churn-model"]["spec"]["canary"][0]["trafficPercent"] == 10
    api = StandInCustomObjects(existing=old, ready_after=None)
    with pytest.raises(ChurnError, match="rolled back"):
        apply(canary, api, timeout=0.05, poll=0.01)
    assert api.objects["churn-model"]["spec"] == old["spec"]
    assert CANARY_VERSION not in api.objects["churn-model"]["metadata"]["annotations"]


def test_a_full_rollout_after_a_knative_canary_drops_the_canary_percent() -> None:
    target = ServingTarget(deployment_mode="Serverless")
    canary = canary_inference_service(
        target, STORAGE, model_version="2", stable_storage=OLD, stable_version="1", percent=10
    )
    api = StandInCustomObjects(existing=canary)
    full = inference_service(target, STORAGE, model_version="2")
    assert apply(full, api, timeout=5, poll=0).ready
    assert api.objects["churn-model"]["spec"] == full["spec"]
    assert CANARY_VERSION not in api.objects["churn-model"]["metadata"]["annotations"]
