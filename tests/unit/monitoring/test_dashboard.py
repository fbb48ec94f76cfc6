"""The Grafana dashboard: a valid dashboard model whose queries only name metrics that exist."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from churn.monitoring.checks import check_drift
from churn.monitoring.publish import dashboard_path, performance_registry, report_registry
from churn.monitoring.reference import ReferenceProfile
from churn.rollout.compare import ShadowComparison, comparison_registry
from churn.rollout.decisions import CheckResult, RolloutResult, StepAnalysis, StepRecord
from churn.rollout.record import rollout_registry
from churn.scoring.publish import scoring_registry

pytestmark = pytest.mark.unit
#: Words in an expression that are PromQL, not metric names.
PROMQL = {
    "sum", "max", "min", "avg", "rate", "increase", "time", "histogram_quantile", "and", "or", "unless",
}  # fmt: skip


SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",), "info": ("_info",), "gauge": ("",)}


def _sample_names(registry: CollectorRegistry) -> set[str]:
    """The series names of every metric (labelled ones have no samples before first use)."""
    return {f.name + suffix for f in registry.collect() for suffix in SUFFIXES.get(f.type, ("",))}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dashboard_path().read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def known_metrics(profile: ReferenceProfile, reference: Any) -> set[str]:
    """Every series our code exposes: the monitoring push, the failure push, the service and KServe."""
    import kserve.metrics  # noqa: F401  (registers request_*_seconds on the default registry)

    import churn.serving.shadow  # noqa: F401  (registers churn_shadow_requests/latency/in_flight)
    from churn.serving.metrics import serve_version

    serve_version("1")  # a server creates its version's series at load; labelled metrics show none before

    frame, probability = reference
    report = check_drift(profile, frame.head(2_000), probability[:2_000])
    names = _sample_names(report_registry(report)) | _sample_names(REGISTRY)
    names |= _sample_names(performance_registry(_performance_report(frame, probability)))
    scoring = {"rows": 10, "churned": 2, "probability_sum": 3.0, "seconds": 1.0, "model_version": "1"}
    scoring |= {"probability_counts": [1] * 10, "decile_counts": [1] * 10}
    names |= _sample_names(scoring_registry(scoring))
    names |= _sample_names(rollout_registry("churn-model", _rolled_back(), _rolled_back().steps[-1]))
    shadow = ShadowComparison(
        "2026-01-01", "2026-01-07", ["1"], "2", 100, 0.9, 0.8, 0.05, 0.7, 0.8, 0.79, 50, 0.81, 0.8
    )
    names |= _sample_names(comparison_registry(shadow))
    return names | {"churn_monitoring_last_failure_timestamp_seconds"}


def _rolled_back() -> RolloutResult:
    """A rollout rolled back at its first step by one failed check."""
    check = CheckResult("latency_p95_ratio", 0.3, 0.1, 3.0, 1.5, False)
    step = StepRecord(1, 10, 0.0, 60.0, StepAnalysis("fail", (check,), "latency_p95_ratio 3 > 1.5"))
    return RolloutResult("churn-model", "5", "4", "rolled_back", "step 1 (10%): latency", (step,))


def _performance_report(frame: Any, probability: Any) -> Any:
    """A performance run over one labelled and one unlabelled cohort of the reference rows."""
    import datetime as dt

    import pandas as pd

    from churn.monitoring.cohorts import evaluate_cohorts

    log = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].head(2_000),
            "scored_at": pd.Timestamp("2026-01-06", tz="UTC"),
            "churn_probability": probability[:2_000],
            "churn_label": (probability[:2_000] >= 0.5).astype("int8"),
            "model_version": "1",
            "date": [dt.date(2026, 1, 6)] * 1_000 + [dt.date(2026, 1, 7)] * 1_000,
        }
    )
    labels = pd.DataFrame({"customer_id": frame["customer_id"].head(1_000), "churned": frame["churned"].head(1_000)})
    return evaluate_cohorts(log, labels, as_of=dt.date(2026, 1, 8), threshold=0.5, reference_roc_auc=0.8)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_is_a_dashboard_model_grafana_loads(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "churn-overview" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert {"x", "y", "w", "h"} <= set(grid) and all(isinstance(grid[k], int) for k in grid)
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
    for panel in _panels(dashboard):
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() and t["refId"] for t in panel["targets"])


def test_datasource_is_a_variable(dashboard: dict[str, Any]) -> None:
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    assert "${datasource}" not in json.dumps(dashboard["templating"])  # no variable refers to itself


def test_every_query_names_metrics_that_exist(dashboard: dict[str, Any], known_metrics: set[str]) -> None:
    used = set()
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            # Drop label matchers, strings, ranges and grouping clauses: what is left names metrics.
            expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\b(?:by|on|without|ignoring)\s*\([^)]*\)', "", target["expr"])
            names = {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w not in PROMQL}
            assert names, target["expr"]
            unknown = names - known_metrics
            assert not unknown, f"{panel['title']}: {sorted(unknown)} are not exposed by any of our metrics"
            used |= names
    # The panels the issue asks for: drift per feature, churn rate, predictions, latency, errors, verdict.
    assert {
        "churn_feature_psi",
        "churn_rate_current",
        "churn_rate_reference",
        "churn_prediction_probability_bucket",
        "churn_prediction_psi",
        "request_predict_seconds_bucket",
        "request_preprocess_seconds_bucket",
        "churn_request_errors_total",
        "churn_input_validation_failures_total",
        "churn_predictions_total",
        "churn_model_info",
        "churn_monitoring_verdict",
        "churn_monitoring_last_success_timestamp_seconds",
        # performance monitoring (issue 15): realized vs estimated ROC-AUC, calibration, overdue labels
        "churn_performance_roc_auc",
        "churn_performance_latest_roc_auc",
        "churn_performance_realized",
        "churn_performance_labels_overdue_cohorts",
        "churn_performance_check_level",
        # batch scoring (issue 14): freshness, failure, rows, top-decile share, deciles, probabilities
        "churn_scoring_last_success_timestamp_seconds",
        "churn_scoring_failed",
        "churn_scoring_rows",
        "churn_scoring_risk_decile_rows",
        "churn_scoring_probability_rows_le",
        "churn_scoring_probability_mean",
        "churn_scoring_label_rows",
        "churn_scoring_duration_seconds",
        # progressive rollout (issue 24): status, step, canary traffic, versions, every check's numbers
        "churn_rollout_status",
        "churn_rollout_step",
        "churn_rollout_canary_percent",
        "churn_rollout_info",
        "churn_rollout_check_value",
        "churn_rollout_check_threshold",
        "churn_rollout_check_passed",
    } <= used
