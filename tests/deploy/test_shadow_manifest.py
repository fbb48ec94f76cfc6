"""The shadow's InferenceService: the challenger on our predictor runtime, predictor only, valid against the CRDs."""

from __future__ import annotations

import subprocess

import pytest
from test_chart import CHART, hardening_violations, render, validate

from churn.deploy import ServingTarget, inference_service, shadow_inference_service, shadow_predictor_host
from churn.errors import ChurnError

pytestmark = pytest.mark.deploy
CHAMPION = "s3://mlflow/1/models/m-abc/artifacts"
CHALLENGER = "s3://mlflow/1/models/m-def/artifacts"


def test_the_shadow_is_a_predictor_only_service_of_its_own_that_validates() -> None:
    target = ServingTarget(name="churn-model", namespace="ns")
    shadow = shadow_inference_service(target, CHALLENGER, model_version="6")
    champion = inference_service(target, CHAMPION, model_version="5")
    assert shadow["metadata"]["name"] == "churn-model-shadow"
    assert shadow["metadata"]["labels"]["churn-mlops/variant"] == "shadow"
    assert shadow["metadata"]["labels"]["churn-mlops/model-version"] == "6"
    assert set(shadow["spec"]) == {"predictor"}
    model = shadow["spec"]["predictor"]["model"]
    assert model["storageUri"] == CHALLENGER
    assert model["args"] == ["--model_version=6"]
    # The same runtime and protocol as the champion's predictor: the transformer calls both alike.
    for key in ("runtime", "protocolVersion", "modelFormat"):
        assert model[key] == champion["spec"]["predictor"]["model"][key]
    assert list(validate([shadow])) == []
    assert list(hardening_violations(shadow)) == []
    assert shadow_predictor_host(target) == "churn-model-shadow-predictor.ns.svc.cluster.local:80"


def test_a_shadow_in_single_pass_mode_is_refused() -> None:
    with pytest.raises(ChurnError, match="transformer"):
        shadow_inference_service(ServingTarget(mode="single"), CHALLENGER, model_version="6")


def test_the_charts_shadow_is_the_deploy_steps_and_the_champion_sends_it_copies(helm: str) -> None:
    """``serving.shadow``: the chart renders the shadow and the champion's shadow flags as the deploy step does."""
    values = ["--set", f"serving.storageUri={CHAMPION}", "--set-string", "serving.modelVersion=5"]
    values += ["--set", "performance.predictionLog=false", "--set", "serving.shadow.enabled=true"]
    values += ["--set", f"serving.shadow.storageUri={CHALLENGER}", "--set-string", "serving.shadow.modelVersion=6"]
    rendered = render(helm, *values)
    services = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "InferenceService"}
    assert set(services) == {"churn-model", "churn-model-shadow"}
    target = ServingTarget(namespace="ml")  # the chart tests render into namespace ml
    shadow = shadow_inference_service(target, CHALLENGER, model_version="6")
    assert services["churn-model-shadow"]["spec"] == shadow["spec"]
    # The pipeline env hands the deploy step the same shadow, so a new champion keeps sending it copies.
    env = next(o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("pipeline-env"))
    host, name = env["data"]["CHURN_SERVING__SHADOW_PREDICTOR_HOST"], env["data"]["CHURN_SERVING__SHADOW_MODEL_NAME"]
    assert (host, name) == (shadow_predictor_host(target), "churn-model-shadow")
    champion = inference_service(
        ServingTarget(namespace="ml", shadow_predictor_host=host, shadow_model_name=name), CHAMPION, model_version="5"
    )
    chart_args = services["churn-model"]["spec"]["transformer"]["containers"][0]["args"]
    assert chart_args == champion["spec"]["transformer"]["containers"][0]["args"]
    assert f"--shadow_predictor_host={host}" in chart_args and "--shadow_model_name=churn-model-shadow" in chart_args
    assert list(validate(rendered)) == []
    # Only the champion's transformer may send the shadow requests.
    policy = next(
        o for o in rendered if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "churn-shadow-predictor"
    )
    assert policy["spec"]["podSelector"]["matchLabels"]["serving.kserve.io/inferenceservice"] == "churn-model-shadow"
    assert policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "churn-model",
        "component": "transformer",
    }
    # Without a shadow nobody gets the flags, and the keys are there, empty (every task reads them).
    plain = render(helm, "--set", "performance.predictionLog=false")
    env = next(o for o in plain if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("pipeline-env"))
    assert env["data"]["CHURN_SERVING__SHADOW_PREDICTOR_HOST"] == ""
    (only,) = [o for o in plain if o["kind"] == "InferenceService"]
    assert not any("shadow" in arg for arg in only["spec"]["transformer"]["containers"][0]["args"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["serving.mode=single", f"serving.shadow.storageUri={CHALLENGER}"],
            "serving.shadow needs serving.mode=transformer",
        ),
        ([], "serving.shadow.enabled needs serving.shadow.storageUri"),
    ],
)
def test_the_chart_refuses_a_shadow_it_cannot_serve(helm: str, values: list[str], message: str) -> None:
    args = [arg for value in ["serving.shadow.enabled=true", *values] for arg in ("--set", value)]
    done = subprocess.run([helm, "template", "churn", str(CHART), *args], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_a_shadow_host_in_single_pass_mode_is_refused_by_the_deploy_step() -> None:
    target = ServingTarget(mode="single", shadow_predictor_host="x-shadow-predictor.ns.svc.cluster.local:80")
    with pytest.raises(ChurnError, match="a shadow needs serving mode 'transformer'"):
        inference_service(target, CHAMPION, model_version="5")
