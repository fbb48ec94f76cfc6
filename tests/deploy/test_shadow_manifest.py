"""The shadow's InferenceService: the challenger on our predictor runtime, predictor only, valid against the CRDs."""

from __future__ import annotations

import pytest
from test_chart import hardening_violations, validate

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
