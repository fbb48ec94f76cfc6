"""Progressive rollout end to end on this machine: real servers, real Prometheus, real clients, the controller.

A stable pair of model servers serves the champion; each case starts a canary pair serving
another registered version. Real V2 clients (tritonclient, HTTP) send batches through a
weighted router, the ONLY stand-in here: it plays Knative's/the Gateway's traffic split
(:class:`churn.rollout.router.WeightedRouter`). A real Prometheus scrapes every server each
second and the controller (:func:`churn.rollout.controller.run_rollout`) judges each step
with :func:`churn.rollout.analysis.analyse_step`, the PromQL a cluster runs. The analysis
interval is scaled down to a few seconds. The parts are in ``rollout_lab.py`` (shared with
``scripts/bench_rollout.py``).

Cases: a good canary (a retrained model) is promoted; one failing on a customer segment
(5xx), one at least 100 ms slower on every request and one answering a constant probability are rolled back by
their check; with Prometheus down the rollout holds and rolls back at the deadline.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rollout_lab import CaseRun, Lab, closed_prometheus_url, running_lab
from rollout_lab import run_case as run_lab_case
from serving_helpers import NAME, metric

from churn.config import RolloutSettings
from churn.predictions.log import read_prediction_log
from churn.registry.mlflow_registry import connect
from churn.rollout.analysis import (
    LATENCY_P95,
    PROBABILITY_PSI,
    SERVER_ERRORS,
    Prometheus,
    PrometheusError,
    latency_p95_query,
    probability_buckets_query,
    requests_query,
)
from churn.serving.client import predict_records
from churn.serving.local import free_port
from servers import stop, wait_http

pytestmark = pytest.mark.integration

INTERVAL = 4.0
#: The latency check at 2x, not the default 1.5x: the good canary is the stable's twin, and on the
#: shared 2-core CI machine its p95 over one 4 s window once reached 1.63x the stable's (32.0 vs
#: 19.7 ms, both read from histogram buckets, with the image tests' containers running beside). The
#: slow canary is at least 100 ms late on every request (``rollout_lab.running_lab``), several times a
#: loaded stable's p95, so 2x still tells them apart; the ratio's own rule is tested in tests/unit/rollout.
SETTINGS = dict(
    steps=[25, 50, 100],
    analysis_interval_seconds=INTERVAL,
    deadline_seconds=60,
    min_requests=20,
    max_latency_ratio=2.0,
)


@pytest.fixture(scope="module")
def lab(
    served_champion: Any, prometheus_bins: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("rollout")
    tracking = served_champion.tracking_uri
    connect(tracking, experiment="rollout-test", artifact_location=(workdir / "artifacts").as_uri())
    with running_lab(
        served_champion.model, served_champion.rows, tracking, prometheus_bins["prometheus"], workdir
    ) as running:
        yield running


def run_case(lab: Lab, case: str, **overrides: Any) -> CaseRun:
    settings = RolloutSettings(**(SETTINGS | {"prometheus_url": lab.prometheus_url} | overrides))
    run = run_lab_case(lab, case, settings)
    result = run.result
    print(f"\n{case}: {result.status} in {run.seconds:.1f} s, clients saw {dict(run.statuses)}: {result.reason}")
    for step in result.steps:  # what each step saw, for a failure's log
        if step.analysis is not None:
            a = step.analysis
            p95 = next((c for c in a.checks if c.name == LATENCY_P95), None)
            latency = f"p95 {p95.canary} vs {p95.stable} s" if p95 else "no p95"
            print(
                f"  {step.percent}%: {a.verdict}, {a.canary_requests:.0f}/{a.stable_requests:.0f} requests, {latency}"
            )
    return run


def failed_checks(run: CaseRun) -> dict[str, Any]:
    """The failed checks of the step that failed, by name."""
    analysis = run.result.steps[-1].analysis
    assert analysis is not None
    return {check.name: check for check in analysis.checks if check.passed is False}


def test_a_good_canary_is_promoted_step_by_step(lab: Lab) -> None:
    run = run_case(lab, "good")
    result = run.result
    assert result.status == "promoted", result.reason
    judged = [step for step in result.steps if step.analysis is not None]
    assert [step.percent for step in judged if step.analysis and step.analysis.verdict == "pass"] == [25, 50]
    for step in judged:
        assert step.analysis is not None
        if step.analysis.verdict == "pass":  # every check had numbers and passed
            assert len(step.analysis.checks) == 5 and all(check.passed for check in step.analysis.checks)
            assert step.analysis.canary_requests >= 20 and step.analysis.stable_requests >= 20
    assert result.steps[-1].percent == 100
    assert set(run.statuses) == {"ok"}, run.statuses  # nobody saw an error during the rollout
    assert sum(run.statuses.values()) > 100


def test_a_canary_failing_on_a_segment_is_rolled_back_by_the_error_check(lab: Lab) -> None:
    run = run_case(lab, "errors")
    assert run.result.status == "rolled_back"
    assert run.result.steps[-1].percent == 25  # rolled back at the first step, not later
    errors = failed_checks(run)[SERVER_ERRORS]
    assert errors.canary is not None and errors.canary > 0.05 and errors.stable == 0.0
    assert f"{SERVER_ERRORS} failed" in run.result.reason
    assert any(status.startswith("5") for status in run.statuses), run.statuses  # the clients saw the 5xx


def test_a_slow_canary_is_rolled_back_by_the_latency_check(lab: Lab) -> None:
    # A window twice as long: the slow canary answers at most ~1 / lab.slow_seconds requests a second,
    # and 4 s of that once came to 22, just over min_requests.
    run = run_case(lab, "slow", analysis_interval_seconds=2 * INTERVAL)
    assert run.result.status == "rolled_back"
    latency = failed_checks(run)[LATENCY_P95]
    assert latency.value is not None and latency.value > SETTINGS["max_latency_ratio"]
    assert f"{LATENCY_P95} failed" in run.result.reason
    assert set(run.statuses) == {"ok"}  # slow, never wrong


def test_a_constant_canary_is_rolled_back_by_the_distribution_check(lab: Lab) -> None:
    run = run_case(lab, "constant")
    assert run.result.status == "rolled_back"
    psi = failed_checks(run)[PROBABILITY_PSI]
    assert psi.value is not None and psi.value > 1.0
    assert set(run.statuses) == {"ok"}  # every answer was a valid probability: only the distribution tells


def test_with_prometheus_down_a_good_canary_is_held_then_rolled_back_at_the_deadline(lab: Lab) -> None:
    down = closed_prometheus_url()
    run = run_case(lab, "good", prometheus_url=down, deadline_seconds=2 * INTERVAL - 1)
    result = run.result
    assert result.status == "rolled_back"
    assert "no verdict within the deadline" in result.reason and "cannot be reached" in result.reason
    verdicts = [step.analysis.verdict for step in result.steps if step.analysis is not None]
    assert verdicts == ["wait", "wait"]  # asked again each interval, never promoted blind
    assert all(step.percent == 25 for step in result.steps)


def test_a_transformer_labels_answers_with_the_version_of_the_predictor_that_gave_them(
    lab: Lab, tmp_path: Path
) -> None:
    """KServe Standard mode: a canary predictor behind the stable transformer is named by its answers."""
    ports = {"transformer_http_port": free_port(), "transformer_grpc_port": free_port()}
    config = dataclasses.replace(lab.stable.config, **ports)
    command = [*config.transformer_command(), "--model_version", "transformer-own"]
    command += ["--prediction_log", str(tmp_path / "predictions"), "--prediction_log_flush_seconds", "0.2"]
    log = tmp_path / "transformer.log"
    with log.open("wb") as out:
        env = {**os.environ, **config.extra_env}
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(f"{config.transformer_url}/v2/models/{NAME}/ready", process, log, seconds=180, ok={200})
        url = config.transformer_url
        assert metric(url, 'churn_request_errors_total{model_version="transformer-own"}') == 0.0  # zero at start
        for start in range(0, 80, 16):
            predict_records(url, NAME, lab.rows[start : start + 16])
        predictor = lab.stable_version
        assert metric(url, f'churn_predictions_total{{model_version="{predictor}"}}') == 80
        assert metric(url, f'churn_prediction_probability_count{{model_version="{predictor}"}}') == 80
        assert metric(url, f'churn_request_duration_seconds_count{{model_version="{predictor}"}}') == 5
        assert metric(url, 'churn_predictions_total{model_version="transformer-own"}') == 0.0
        assert metric(url, 'churn_request_duration_seconds_count{model_version="transformer-own"}') == 0.0
    finally:
        stop(process)
    logged = read_prediction_log(str(tmp_path / "predictions"))  # flushed on SIGTERM
    assert len(logged) == 80 and set(logged["model_version"]) == {predictor}
    assert set(logged["variant"]) == {"canary"}


def test_the_prometheus_client_reads_vectors_and_says_what_prometheus_refused(lab: Lab) -> None:
    prometheus = Prometheus(lab.prometheus_url)
    rows = prometheus.query(probability_buckets_query(lab.stable_version, 600))
    assert len(rows) == 21 and {labels["le"] for labels, _ in rows} >= {"0.05", "1.0", "+Inf"}
    answered = prometheus.value(requests_query(lab.stable_version, 600))
    assert answered is not None and answered > 0
    assert prometheus.value(latency_p95_query("no-such-version", 60)) is None  # a quantile of nothing
    with pytest.raises(PrometheusError, match=r"refused 'sum\(': HTTP 400"):
        prometheus.query("sum(")
