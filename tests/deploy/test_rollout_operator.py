"""``churn rollout status | promote | abort``: an operator sees a rollout and overrules it.

A real MLflow registry (sqlite, tests/rollout_registry.py) and the stand-in Kubernetes API
(tests/kube_standin.py) holding a Standard canary: v5 on 10% beside the stable v4.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from churn.cli import app
from churn.deploy import ServingTarget, canary_inference_service, inference_service
from churn.errors import ChurnError
from churn.rollout.decisions import TrafficState
from churn.rollout.kserve import KServeTraffic
from churn.rollout.operator import overrule, overrule_hook, rollout_status
from churn.rollout.record import tag_version
from kube_standin import StandInCustomObjects
from rollout_registry import CANARY, MODEL, STABLE, STORAGE, champion, tags

pytestmark = pytest.mark.deploy
TARGET = ServingTarget(deployment_mode="RawDeployment")


def canary_traffic() -> tuple[KServeTraffic, StandInCustomObjects]:
    manifest = canary_inference_service(
        TARGET, STORAGE[CANARY], model_version=CANARY, stable_storage=STORAGE[STABLE], stable_version=STABLE, percent=10
    )
    api = StandInCustomObjects(existing=manifest)
    return KServeTraffic(api, TARGET), api


def test_status_shows_the_tags_and_the_clusters_traffic(registry: str) -> None:
    tag_version(MODEL, CANARY, {"rollout.status": "progressing", "rollout.step": "1 (10%)"})
    traffic, _ = canary_traffic()
    lines = rollout_status(MODEL, traffic=traffic).lines()  # the version: the cluster's canary
    assert lines == [
        f"{MODEL} v5", "  rollout.status: progressing", "  rollout.step: 1 (10%)",
        "  traffic: stable v4, canary v5 at 10%",
    ]  # fmt: skip
    shown = CliRunner().invoke(app, ["rollout", "status"], env={"CHURN_MLFLOW__TRACKING_URI": registry})
    assert shown.exit_code == 0, shown.output
    assert "churn-model v5" in shown.output and "rollout.status: progressing" in shown.output


def test_a_running_rollout_gets_the_word_through_its_hook(registry: str) -> None:
    tag_version(MODEL, CANARY, {"rollout.status": "progressing"})
    hook = overrule_hook(MODEL, CANARY)
    assert hook() is None
    traffic, api = canary_traffic()
    assert "will abort within a poll" in overrule(MODEL, "abort", traffic=traffic)
    assert hook() == "abort"
    assert api.calls == [] and champion() == CANARY  # the running rollout does the rest, not the command


def test_without_a_running_rollout_abort_acts_on_the_service_and_moves_champion_back(registry: str) -> None:
    traffic, api = canary_traffic()
    said = overrule(MODEL, "abort", traffic=traffic)
    assert said == f"{MODEL} v5: aborted, all traffic on v4; @champion back on v4"
    assert api.objects[MODEL]["spec"] == inference_service(TARGET, STORAGE[STABLE], model_version=STABLE)["spec"]
    assert champion() == STABLE
    assert tags(CANARY)["rollout.status"] == "rolled_back" and tags(CANARY)["rollout.override"] == "abort"


def test_without_a_running_rollout_promote_gives_the_canary_all_traffic(registry: str) -> None:
    traffic, api = canary_traffic()
    assert "promoted" in overrule(MODEL, "promote", traffic=traffic)
    assert traffic.state() == TrafficState(CANARY, None, 0)
    assert api.objects[MODEL]["spec"] == inference_service(TARGET, STORAGE[CANARY], model_version=CANARY)["spec"]
    assert champion() == CANARY and tags(CANARY)["rollout.status"] == "promoted"


def test_without_a_rollout_or_a_cluster_the_word_is_only_recorded(registry: str) -> None:
    with pytest.raises(ChurnError, match="no running rollout and there is no cluster"):
        overrule(MODEL, "promote", version=CANARY)
    assert tags(CANARY)["rollout.override"] == "promote"
    traffic, _ = canary_traffic()
    with pytest.raises(ChurnError, match="no canary v3 to abort"):
        overrule(MODEL, "abort", version="3", traffic=traffic)
