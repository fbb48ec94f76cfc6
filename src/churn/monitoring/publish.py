"""Publish a monitoring run's results to a Prometheus Pushgateway.

A monitoring run is a batch job, so it pushes instead of being scraped: Prometheus then
scrapes the Pushgateway (with ``honor_labels: true``) and evaluates the alert rules in
``rules/churn-alerts.yaml``. All metrics are gauges with a ``churn_`` prefix, base units
and at most one label (``feature``, ``check`` or ``source``), so cardinality stays fixed;
the performance run's per-cohort gauges add ``cohort`` and ``model_version`` labels, bounded by
its look-back window (and the few versions served in it), and push to a job of their own so
the two runs never replace each other's metrics.

A successful run replaces its whole group (``push``), so a feature that is no longer
checked disappears. A failed run only adds ``churn_monitoring_failed 1`` and the failure
time (``pushadd``), keeping the last good results and their timestamp visible, so the
"stale" alert still measures the time since the last success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError

from churn.errors import ChurnError
from churn.monitoring.perf_report import PERFORMANCE_CHECKS, PerformanceReport
from churn.monitoring.report import CHECKS, LEVELS, DriftReport

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


DEFAULT_JOB = "churn-monitoring"


def report_registry(report: DriftReport, *, timestamp: float | None = None) -> CollectorRegistry:
    """The metrics of one successful run, in a fresh registry.

    Args:
        report: The run's drift report.
        timestamp: Unix time of the run's success (now when omitted).

    """
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    psi = gauge("churn_feature_psi", "PSI of a numeric feature against the reference (unitless).", ("feature",))
    chi2 = gauge("churn_feature_chi2_statistic", "Chi-square statistic of a categorical feature.", ("feature",))
    cramers_v = gauge("churn_feature_cramers_v", "Cramér's V of a categorical feature (0 to 1).", ("feature",))
    wasserstein = gauge(
        "churn_feature_wasserstein",
        "Wasserstein distance of a numeric feature from the reference, in reference standard deviations.",
        ("feature",),
    )
    p_value = gauge("churn_feature_drift_p_value", "P-value of a feature's drift test.", ("feature",))
    level = gauge("churn_feature_drift_level", "Drift level of a feature: 0 ok, 1 warn, 2 alert.", ("feature",))
    for f in report.features:
        if f.psi is not None:
            psi.labels(feature=f.feature).set(f.psi)
        if f.wasserstein is not None:
            wasserstein.labels(feature=f.feature).set(f.wasserstein)
        if f.chi2 is not None and f.cramers_v is not None:
            chi2.labels(feature=f.feature).set(f.chi2)
            cramers_v.labels(feature=f.feature).set(f.cramers_v)
        p_value.labels(feature=f.feature).set(f.p_value)
        level.labels(feature=f.feature).set(LEVELS.index(f.level))

    if report.churn_rate:
        c = report.churn_rate
        source = ("source",)
        gauge("churn_rate_current", "Churn rate of the current data (ratio).", source).labels(c.source).set(c.current)
        gauge("churn_rate_reference", "Churn rate of the reference (ratio).", source).labels(c.source).set(c.reference)
        gauge("churn_rate_delta", "Current minus reference churn rate (ratio).", source).labels(c.source).set(c.delta)
    if report.prediction:
        gauge("churn_prediction_psi", "PSI of the predicted churn probabilities.").set(report.prediction.psi)
        gauge("churn_prediction_mean", "Mean predicted churn probability.").set(report.prediction.current_mean)
    if report.performance:
        a = report.performance
        gauge("churn_recent_roc_auc", "ROC-AUC on recent labelled rows.").set(a.roc_auc)
        gauge("churn_reference_roc_auc", "The champion's ROC-AUC on its test split.").set(a.reference_roc_auc)

    checks = gauge("churn_monitoring_check_level", "Level of a check family: 0 ok, 1 warn, 2 alert.", ("check",))
    for check in CHECKS:
        checks.labels(check=check).set(LEVELS.index(report.levels[check]))
    gauge("churn_monitoring_verdict", "Verdict of the run: 0 ok, 1 warn, 2 alert.").set(LEVELS.index(report.verdict))
    gauge("churn_monitoring_drifted_features", "Features at alert level.").set(len(report.flagged))
    gauge("churn_monitoring_current_rows", "Rows checked in the run.").set(report.current_rows)
    gauge("churn_monitoring_failed", "1 when the last run failed, else 0.").set(0)
    gauge("churn_monitoring_last_success_timestamp_seconds", "Unix time of the last successful monitoring run.").set(
        time.time() if timestamp is None else timestamp
    )
    return registry


def push_report(
    report: DriftReport,
    gateway: str,
    *,
    job: str = DEFAULT_JOB,
    timeout: float = 10.0,
    timestamp: float | None = None,
) -> None:
    """Push a successful run's metrics, replacing the job's previous group.

    Args:
        report: The run's drift report.
        gateway: Pushgateway address, e.g. ``http://pushgateway:9091``.
        job: Job name (the grouping key).
        timeout: HTTP timeout in seconds.
        timestamp: Unix time of the run's success (now when omitted).

    Raises:
        ChurnError: The Pushgateway cannot be reached or refuses the push; the message
            names the URL. Write the report before pushing, so nothing is lost.

    """
    push_registry(gateway, report_registry(report, timestamp=timestamp), job=job, timeout=timeout)


def performance_registry(report: PerformanceReport, *, timestamp: float | None = None) -> CollectorRegistry:
    """The metrics of one performance run, in a fresh registry.

    Per-cohort series carry ``cohort`` (the scoring day) and ``model_version`` (the version that
    scored it) labels; their number is bounded by the run's look-back window
    (``CHURN_PERFORMANCE__WINDOW_DAYS``) and the versions served in it. The ``latest``
    gauges hold the newest cohort's numbers for alerts and single-stat panels.
    """
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    auc = gauge(
        "churn_performance_roc_auc",
        "ROC-AUC of a daily cohort, realized or estimated (CBPE).",
        ("cohort", "model_version", "kind"),
    )
    auc_se = gauge(
        "churn_performance_roc_auc_standard_error",
        "Standard error of a cohort's ROC-AUC.",
        ("cohort", "model_version", "kind"),
    )
    realized = gauge(
        "churn_performance_realized",
        "Realized metric of a labelled cohort: pr_auc, precision, recall, lift_top_decile, brier, ece, churn_rate.",
        ("cohort", "model_version", "metric"),
    )
    estimated = gauge(
        "churn_performance_estimated",
        "CBPE estimate of a cohort: precision, recall, churn_rate.",
        ("cohort", "model_version", "metric"),
    )
    scored = gauge("churn_performance_scored_rows", "Customers scored in a cohort.", ("cohort", "model_version"))
    labelled = gauge(
        "churn_performance_labelled_rows", "Customers of a cohort whose label has arrived.", ("cohort", "model_version")
    )
    cohort_level = gauge(
        "churn_performance_cohort_level", "Level of a cohort: 0 ok, 1 warn, 2 alert.", ("cohort", "model_version")
    )
    latest = gauge(
        "churn_performance_latest_roc_auc", "ROC-AUC of the newest cohort with one (realized or estimated).", ("kind",)
    )
    for c in report.cohorts:
        day, version = c.cohort.isoformat(), c.model_version
        scored.labels(cohort=day, model_version=version).set(c.scored)
        labelled.labels(cohort=day, model_version=version).set(c.labelled)
        cohort_level.labels(cohort=day, model_version=version).set(LEVELS.index(c.level))
        if c.estimated:
            auc.labels(cohort=day, model_version=version, kind="estimated").set(c.estimated.roc_auc)
            auc_se.labels(cohort=day, model_version=version, kind="estimated").set(c.estimated.roc_auc_standard_error)
            for metric in ("precision", "recall", "churn_rate"):
                estimated.labels(cohort=day, model_version=version, metric=metric).set(getattr(c.estimated, metric))
            latest.labels(kind="estimated").set(c.estimated.roc_auc)
        if c.realized:
            auc.labels(cohort=day, model_version=version, kind="realized").set(c.realized.roc_auc)
            auc_se.labels(cohort=day, model_version=version, kind="realized").set(c.realized.roc_auc_standard_error)
            for metric in ("pr_auc", "precision", "recall", "lift_top_decile", "brier", "ece", "churn_rate"):
                realized.labels(cohort=day, model_version=version, metric=metric).set(getattr(c.realized, metric))
            latest.labels(kind="realized").set(c.realized.roc_auc)
    if report.reference_roc_auc is not None:
        gauge("churn_performance_reference_roc_auc", "The champion's ROC-AUC on its test split.").set(
            report.reference_roc_auc
        )
    checks = gauge("churn_performance_check_level", "Level of a performance check: 0 ok, 1 warn, 2 alert.", ("check",))
    for check in PERFORMANCE_CHECKS:
        checks.labels(check=check).set(LEVELS.index(report.levels[check]))
    gauge("churn_performance_labels_overdue_cohorts", "Cohorts whose labels are later than delay + grace.").set(
        sum(c.labels_overdue for c in report.cohorts)
    )
    gauge("churn_performance_label_delay_days", "Days after scoring when labels are expected.").set(
        report.label_delay_days
    )
    gauge("churn_performance_last_success_timestamp_seconds", "Unix time of the last successful performance run.").set(
        time.time() if timestamp is None else timestamp
    )
    return registry


def push_performance(
    report: PerformanceReport,
    gateway: str,
    *,
    job: str = "churn-performance",
    timeout: float = 10.0,
    timestamp: float | None = None,
) -> None:
    """Push a performance run's metrics, replacing that job's previous group (the drift job's stays).

    Raises:
        ChurnError: The Pushgateway cannot be reached or refuses the push.

    """
    push_registry(gateway, performance_registry(report, timestamp=timestamp), job=job, timeout=timeout)


def push_failure(
    gateway: str,
    *,
    job: str = DEFAULT_JOB,
    timeout: float = 10.0,
    timestamp: float | None = None,
    subsystem: str = "monitoring",
) -> None:
    """Record a failed run: ``churn_<subsystem>_failed 1`` and the failure time.

    The last successful run's metrics stay in place (see the module docstring). The batch
    scoring job records its failures the same way (``subsystem="scoring"``).

    Raises:
        ChurnError: The Pushgateway cannot be reached or refuses the push.

    """
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    Gauge(f"churn_{subsystem}_failed", "1 when the last run failed, else 0.", registry=registry).set(1)
    Gauge(
        f"churn_{subsystem}_last_failure_timestamp_seconds",
        f"Unix time of the last failed {subsystem} run.",
        registry=registry,
    ).set(time.time() if timestamp is None else timestamp)
    push_registry(gateway, registry, job=job, timeout=timeout, replace=False)


def push_registry(
    gateway: str, registry: CollectorRegistry, *, job: str, timeout: float = 10.0, replace: bool = True
) -> None:
    """Push ``registry`` as ``job`` (with the Pushgateway user when one is configured).

    ``replace`` swaps the job's whole group (a run's results); otherwise only these metrics
    are added or updated (a failure, which keeps the last success's metrics).

    Raises:
        ChurnError: The Pushgateway cannot be reached or refuses the push; the message names
            the URL and the settings, never the password.

    """
    from prometheus_client import push_to_gateway, pushadd_to_gateway

    push = push_to_gateway if replace else pushadd_to_gateway
    handler = _auth_handler()
    _send(lambda: push(gateway, job=job, registry=registry, timeout=timeout, handler=handler), gateway)


def _auth_handler() -> Callable[..., Callable[[], None]]:
    """prometheus_client's push handler, with basic auth when the settings name a Pushgateway user.

    The credentials come from the environment (CHURN_MONITORING__PUSHGATEWAY_USERNAME and
    _PASSWORD; in a cluster from a Secret), never from a pipeline parameter, so they are in
    no compiled pipeline, run record or artifact.
    """
    from prometheus_client.exposition import basic_auth_handler, default_handler

    from churn.config import get_settings

    monitoring = get_settings().monitoring
    if not monitoring.pushgateway_username:
        return default_handler
    username = monitoring.pushgateway_username
    password = monitoring.pushgateway_password.get_secret_value() if monitoring.pushgateway_password else ""

    def handler(url: str, method: str, timeout: float | None, headers: Any, data: bytes) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return handler


def _send(push: Callable[[], None], gateway: str) -> None:
    try:
        push()
    except HTTPError as exc:
        if exc.code in (401, 403):  # the message names the setting, never the password
            raise ChurnError(
                f"the Pushgateway at {gateway} refused the push ({exc.code}): check "
                "CHURN_MONITORING__PUSHGATEWAY_USERNAME and CHURN_MONITORING__PUSHGATEWAY_PASSWORD"
            ) from None
        raise ChurnError(f"could not push monitoring metrics to the Pushgateway at {gateway}: {exc}") from exc
    except (OSError, ValueError) as exc:  # URLError is an OSError
        raise ChurnError(f"could not push monitoring metrics to the Pushgateway at {gateway}: {exc}") from exc


def alert_rules_path() -> Path:
    """The Prometheus alert-rule file shipped with the package (``rules/churn-alerts.yaml``)."""
    from importlib.resources import files

    return Path(str(files("churn.monitoring").joinpath("rules", "churn-alerts.yaml")))


def dashboard_path() -> Path:
    """The Grafana dashboard shipped with the package (``dashboards/churn-overview.json``).

    Import it in Grafana (Dashboards -> New -> Import) and pick the Prometheus data source
    that scrapes the Pushgateway and the KServe pods: the data source is a variable.
    """
    from importlib.resources import files

    return Path(str(files("churn.monitoring").joinpath("dashboards", "churn-overview.json")))
