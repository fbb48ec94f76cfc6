"""KServeTraffic: a rollout's traffic split over an InferenceService, in both KServe deployment modes.

Driven against the stand-in ``CustomObjectsApi`` (tests/kube_standin.py), which applies
patches as the API server does (RFC 7386 merge patch); every object it ends with is
validated against the vendored KServe CRD.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_chart import validate

from churn.config import ServingMode
from churn.deploy import CANARY_VERSION, STABLE_VERSION, ServingTarget, canary_inference_service, inference_service
from churn.errors import ChurnError
from churn.rollout.decisions import TrafficState
from churn.rollout.kserve import KServeTraffic
from kube_standin import StandInCustomObjects

pytestmark = pytest.mark.deploy
OLD, NEW = "s3://mlflow/1/models/m-old/artifacts", "s3://mlflow/1/models/m-new/artifacts"
MODES = [
    pytest.param(deployment, serving, id=f"{deployment}-{serving}")
    for deployment in ("Serverless", "RawDeployment")
    for serving in ("transformer", "single")
]


def canary_service(target: ServingTarget, percent: int = 10) -> tuple[KServeTraffic, StandInCustomObjects]:
    manifest = canary_inference_service(
        target, NEW, model_version="5", stable_storage=OLD, stable_version="4", percent=percent
    )
    api = StandInCustomObjects(existing=manifest)
    return KServeTraffic(api, target), api


def served(api: StandInCustomObjects) -> dict[str, Any]:
    return api.objects["churn-model"]


@pytest.mark.parametrize(("deployment", "serving"), MODES)
def test_steps_then_promotion_leave_the_canary_as_the_only_model(deployment: str, serving: ServingMode) -> None:
    target = ServingTarget(deployment_mode=deployment, mode=serving)
    traffic, api = canary_service(target)
    assert traffic.state() == TrafficState("4", "5", 10)
    traffic.set_canary_percent(50)
    assert traffic.state() == TrafficState("4", "5", 50)
    if deployment == "Serverless":  # every component splits its own traffic
        assert {c["canaryTrafficPercent"] for c in served(api)["spec"].values()} == {50}
    traffic.promote()
    assert traffic.state() == TrafficState("5", None, 0)
    assert served(api)["spec"] == inference_service(target, NEW, model_version="5")["spec"]
    assert served(api)["metadata"]["annotations"][STABLE_VERSION] == "5"
    assert list(validate([served(api)])) == []


@pytest.mark.parametrize(("deployment", "serving"), MODES)
def test_abort_sends_all_traffic_back_to_the_stable_model(deployment: str, serving: ServingMode) -> None:
    target = ServingTarget(deployment_mode=deployment, mode=serving)
    traffic, api = canary_service(target, percent=50)
    traffic.abort()
    spec = served(api)["spec"]
    if deployment == "Serverless":  # KServe serves the previous rolled-out revision; the spec keeps the canary at 0%
        assert traffic.state() == TrafficState("4", "5", 0)
        assert {c["canaryTrafficPercent"] for c in spec.values()} == {0}
    else:  # the entry goes: only the stable model is left
        assert traffic.state() == TrafficState("4", None, 0)
        assert spec == inference_service(target, OLD, model_version="4")["spec"]
        assert CANARY_VERSION not in served(api)["metadata"]["annotations"]
    assert list(validate([served(api)])) == []


def test_without_a_canary_abort_sends_nothing_and_promote_and_steps_refuse() -> None:
    api = StandInCustomObjects(existing=inference_service(ServingTarget(), OLD, model_version="4"))
    traffic = KServeTraffic(api, ServingTarget())
    assert traffic.state() == TrafficState("4", None, 0)
    traffic.abort()
    assert api.calls == []
    with pytest.raises(ChurnError, match="no canary to promote"):
        traffic.promote()
    with pytest.raises(ChurnError, match="no canary to send traffic to"):
        traffic.set_canary_percent(50)
    with pytest.raises(ChurnError, match=r"0\.\.100"):
        traffic.set_canary_percent(101)


def test_a_missing_service_is_an_error() -> None:
    with pytest.raises(ChurnError, match="no InferenceService churn-mlops/churn-model"):
        KServeTraffic(StandInCustomObjects(), ServingTarget()).state()
