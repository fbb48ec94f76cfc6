"""A progressive rollout in a cluster, end to end but for the cluster itself.

The InferenceService lives in the stand-in ``CustomObjectsApi`` (tests/kube_standin.py:
merge patches as the API server applies them, KServe's Ready status); the registry is a real
MLflow (sqlite); the analysis is a scripted function standing in for Prometheus (the real
PromQL analysis is tested against a real Prometheus in tests/integration/test_rollout*.py);
time is a fake clock, so a rollout of minutes runs in milliseconds.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from churn.config import RolloutSettings
from churn.deploy import ServingTarget, inference_service
from churn.rollout.cluster import RolloutModels, prometheus_analysis, roll_out
from churn.rollout.decisions import CheckResult, StepAnalysis
from churn.rollout.operator import overrule, overrule_hook
from churn.rollout.record import MarkdownTable, MlflowTags, PushgatewayMetrics, Recorders, tag_version
from churn.serving.local import free_port
from kube_standin import StandInCustomObjects
from rollout_registry import CANARY, MODEL, STABLE, STORAGE, champion, tags

pytestmark = pytest.mark.deploy
SETTINGS = RolloutSettings(steps=[10, 50, 100], analysis_interval_seconds=60, deadline_seconds=600)
MODELS = RolloutModels(MODEL, CANARY, STORAGE[CANARY], STABLE, STORAGE[STABLE])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def served(target: ServingTarget) -> tuple[ServingTarget, StandInCustomObjects]:
    return target, StandInCustomObjects(existing=inference_service(target, STORAGE[STABLE], model_version=STABLE))


def passing(canary: str, stable: str, window: float) -> StepAnalysis:
    check = CheckResult("error_rate_increase", 0.001, 0.001, 0.0, 0.01, True)
    return StepAnalysis("pass", (check,), "every check passed", canary_requests=500, stable_requests=4500)


def slow_canary(canary: str, stable: str, window: float) -> StepAnalysis:
    check = CheckResult("latency_p95_ratio", 0.31, 0.1, 3.1, 1.5, False, "p95 0.31s vs 0.10s")
    return StepAnalysis("fail", (check,), "latency_p95_ratio 3.1 > 1.5", canary_requests=90, stable_requests=810)


def run(target: ServingTarget, api: StandInCustomObjects, analyse, tmp_path: Path, **kwargs):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    recorder = Recorders(MlflowTags(MODEL, CANARY), MarkdownTable(tmp_path / "rollout.md"))
    tag_version(MODEL, CANARY, {"rollout.status": "progressing"})
    return roll_out(
        api, target, MODELS, SETTINGS, analyse=analyse, recorder=recorder, sleep=clock.sleep, clock=clock, **kwargs
    )


@pytest.mark.parametrize("deployment", ["Serverless", "RawDeployment"])
def test_a_good_canary_is_promoted_step_by_step(registry: str, tmp_path: Path, deployment: str) -> None:
    target, api = served(ServingTarget(deployment_mode=deployment))
    result = run(target, api, passing, tmp_path)
    assert result.status == "promoted" and [s.percent for s in result.steps] == [10, 50, 100]
    assert api.objects[MODEL]["spec"] == inference_service(target, STORAGE[CANARY], model_version=CANARY)["spec"]
    assert champion() == CANARY
    assert tags(CANARY)["rollout.status"] == "promoted" and tags(CANARY)["rollout.step"] == "3 (100%)"
    table = (tmp_path / "rollout.md").read_text()
    assert "**promoted**" in table and "| 1 | 10 | pass | 500 | 4500 |" in table and "| 2 | 50 | pass |" in table


def test_a_failed_check_rolls_back_at_once_and_champion_goes_back(registry: str, tmp_path: Path) -> None:
    target, api = served(ServingTarget(deployment_mode="RawDeployment"))
    result = run(target, api, slow_canary, tmp_path)
    assert result.status == "rolled_back" and len(result.steps) == 1
    assert api.objects[MODEL]["spec"] == inference_service(target, STORAGE[STABLE], model_version=STABLE)["spec"]
    assert champion() == STABLE
    assert tags(CANARY)["rollout.status"] == "rolled_back"
    assert "latency_p95_ratio 3.1 > 1.5" in tags(CANARY)["rollout.reason"]
    assert "❌ latency_p95_ratio 3.1 (≤ 1.5)" in (tmp_path / "rollout.md").read_text()


def test_without_prometheus_the_rollout_holds_then_rolls_back_at_the_deadline(registry: str, tmp_path: Path) -> None:
    target, api = served(ServingTarget(deployment_mode="Serverless"))
    result = run(target, api, prometheus_analysis(SETTINGS), tmp_path)  # SETTINGS has no prometheus_url
    assert result.status == "rolled_back"
    assert "deadline of 600s" in result.reason and "no Prometheus URL" in result.reason
    assert len(result.steps) == 10 and {s.percent for s in result.steps} == {10}  # one analysis per interval
    assert {c["canaryTrafficPercent"] for c in api.objects[MODEL]["spec"].values()} == {0}
    assert champion() == STABLE


def test_a_failure_mid_rollout_sends_traffic_back_and_leaves_no_moved_alias(registry: str, tmp_path: Path) -> None:
    target, api = served(ServingTarget(deployment_mode="RawDeployment"))

    def broken(canary: str, stable: str, window: float) -> StepAnalysis:
        api.patch_namespaced_custom_object = None  # type: ignore[assignment,method-assign]  # the API server goes
        raise KeyboardInterrupt  # the task is stopped mid-step (not an analysis error: that would only hold)

    with pytest.raises(KeyboardInterrupt):
        run(target, api, broken, tmp_path)
    assert champion() == STABLE  # the alias went back although the traffic could not
    assert tags(CANARY)["rollout.status"] == "rolled_back" and "KeyboardInterrupt" in tags(CANARY)["rollout.reason"]


def test_an_operators_promote_wins_over_a_holding_analysis(registry: str, tmp_path: Path) -> None:
    target, api = served(ServingTarget(deployment_mode="RawDeployment"))
    tag_version(MODEL, CANARY, {"rollout.status": "progressing"})
    assert "will promote" in overrule(MODEL, "promote", version=CANARY)
    result = run(target, api, prometheus_analysis(SETTINGS), tmp_path, overrule=overrule_hook(MODEL, CANARY))
    assert result.status == "promoted" and "an operator chose to promote" in result.reason
    assert api.objects[MODEL]["spec"] == inference_service(target, STORAGE[CANARY], model_version=CANARY)["spec"]


def test_the_deploy_stage_in_a_cluster_without_prometheus_holds_then_rolls_back(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage as the KFP task runs it, on real time scaled down: the rollout's settings from the environment."""
    import churn.rollout.kserve
    from churn.stages.deploy import deploy

    target, api = served(ServingTarget(deployment_mode="RawDeployment"))
    monkeypatch.setattr(churn.rollout.kserve, "cluster_api", lambda: api)  # the stand-in is the cluster
    monkeypatch.setenv("CHURN_ROLLOUT__ANALYSIS_INTERVAL_SECONDS", "0.05")
    monkeypatch.setenv("CHURN_ROLLOUT__DEADLINE_SECONDS", "0.3")
    monkeypatch.setenv("CHURN_ROLLOUT__PROMETHEUS_URL", "")
    monkeypatch.delenv("CHURN_MONITORING__PUSHGATEWAY_URL", raising=False)
    manifest, report = tmp_path / "manifest.yaml", tmp_path / "rollout.md"
    done = deploy(
        CANARY, manifest, tracking_uri=registry, model_name=MODEL, mode="cluster", namespace="",
        canary_percent=None, timeout=5, report_path=report,
    )  # fmt: skip
    assert done["status"] == "rolled_back" and "no Prometheus URL" in done["message"]
    assert yaml.safe_load(manifest.read_text())["spec"]["canary"][0]["trafficPercent"] == 10
    assert api.objects[MODEL]["spec"] == inference_service(target, STORAGE[STABLE], model_version=STABLE)["spec"]
    assert champion() == STABLE and tags(CANARY)["rollout.status"] == "rolled_back"
    assert "**rolled back**" in report.read_text() and "| 1 | 10 | wait |" in report.read_text()


@pytest.mark.parametrize("progressive", [True, False])
def test_the_deploy_stage_without_a_cluster_writes_what_it_would_apply(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, progressive: bool
) -> None:
    from churn.stages.deploy import deploy

    monkeypatch.setenv("CHURN_ROLLOUT__PROGRESSIVE", str(progressive).lower())
    monkeypatch.setenv("CHURN_DEPLOY__DEPLOYMENT_MODE", "Serverless")
    manifest = tmp_path / "manifest.yaml"
    done = deploy(
        CANARY, manifest, tracking_uri=registry, model_name=MODEL, mode="local", namespace="",
        canary_percent=None, timeout=5, report_path=tmp_path / "rollout.md",
    )  # fmt: skip
    written = yaml.safe_load(manifest.read_text())
    assert not done["applied"] and written["metadata"]["labels"]["churn-mlops/model-version"] == CANARY
    # The canary at its first step beside the previous champion (v4, the latest earlier promoted version).
    percents = {c.get("canaryTrafficPercent") for c in written["spec"].values()}
    assert percents == ({10} if progressive else {None})
    assert ("steps 10%, 50%, 100%" in done["message"]) is progressive
    assert (written["metadata"]["annotations"].get("churn-mlops/stable-model-version") == STABLE) is progressive


def test_an_unreachable_prometheus_and_pushgateway_never_promote_nor_stop_the_rollout(
    registry: str, tmp_path: Path
) -> None:
    """A Prometheus that does not answer is no pass, whatever the analysis makes of it; a dead recorder is skipped."""
    nobody = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    settings = SETTINGS.model_copy(update={"prometheus_url": nobody})
    target, api = served(ServingTarget(deployment_mode="RawDeployment"))
    clock = FakeClock()
    recorder = Recorders(PushgatewayMetrics(nobody, MODEL, timeout=1), MarkdownTable(tmp_path / "rollout.md"))
    result = roll_out(
        api, target, MODELS, settings, analyse=prometheus_analysis(settings), recorder=recorder,
        sleep=clock.sleep, clock=clock,
    )  # fmt: skip
    assert result.status == "rolled_back" and "deadline" in result.reason
    assert all(s.analysis is not None and s.analysis.verdict == "wait" for s in result.steps)
    assert "**rolled back**" in (tmp_path / "rollout.md").read_text()  # the recorder after the dead one still ran
    assert champion() == STABLE


def test_a_sigterm_mid_rollout_sends_traffic_and_champion_back(registry: str, tmp_path: Path) -> None:
    """A cancelled KFP run: its pod gets SIGTERM while a step is judged; the clean-up runs before the exit."""
    target, api = served(ServingTarget(deployment_mode="RawDeployment"))

    def terminated(canary: str, stable: str, window: float) -> StepAnalysis:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler raises here, in the main thread
        return passing(canary, stable, window)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        run(target, api, terminated, tmp_path)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # the task's own handler is back
    assert api.objects[MODEL]["spec"] == inference_service(target, STORAGE[STABLE], model_version=STABLE)["spec"]
    assert champion() == STABLE and tags(CANARY)["rollout.status"] == "rolled_back"
    assert "SystemExit" in tags(CANARY)["rollout.reason"]
