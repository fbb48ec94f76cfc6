"""Publish a scoring run's numbers to the Prometheus Pushgateway (job ``churn-scoring``).

Like monitoring, a scoring run is a batch job and pushes: rows scored, duration, the
distribution of probabilities (ten equal-width buckets, cumulative like a histogram's
``le``), labels and risk deciles, the mean probability, and the time of the last success.
A failed run only adds ``churn_scoring_failed 1`` and its time (``pushadd``), so the last
good run's numbers and its success time stay visible for a staleness alert.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from churn.monitoring.publish import push_failure, push_registry
from churn.scoring.batch import PROBABILITY_BUCKETS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

DEFAULT_JOB = "churn-scoring"


def scoring_registry(stats: dict[str, Any], *, timestamp: float | None = None) -> CollectorRegistry:
    """The metrics of one successful scoring run, in a fresh registry.

    Args:
        stats: ``rows``, ``churned``, ``probability_sum``, ``probability_counts`` (per bucket of
            :data:`PROBABILITY_BUCKETS`), ``decile_counts`` (deciles 1..10), ``seconds`` and ``model_version``.
        timestamp: Unix time of the success (now when omitted).

    """
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    rows = int(stats["rows"])
    Gauge("churn_scoring_rows", "Customers scored by the last successful run.", registry=registry).set(rows)
    Gauge("churn_scoring_duration_seconds", "Duration of the last successful scoring run.", registry=registry).set(
        float(stats["seconds"])
    )
    labels = Gauge(
        "churn_scoring_label_rows", "Customers per predicted label in the last run.", ["label"], registry=registry
    )
    labels.labels(label="churned").set(int(stats["churned"]))
    labels.labels(label="retained").set(rows - int(stats["churned"]))
    Gauge("churn_scoring_probability_mean", "Mean churn probability of the last run.", registry=registry).set(
        float(stats["probability_sum"]) / rows if rows else 0.0
    )
    buckets = Gauge(
        "churn_scoring_probability_rows_le",
        "Customers of the last run with a churn probability at or below le (cumulative).",
        ["le"],
        registry=registry,
    )
    total = 0
    for edge, count in zip(PROBABILITY_BUCKETS[1:], stats["probability_counts"], strict=True):
        total += int(count)
        buckets.labels(le=f"{edge:.1f}").set(total)
    deciles = Gauge(
        "churn_scoring_risk_decile_rows",
        "Customers per risk decile (1 lowest .. 10 highest).",
        ["decile"],
        registry=registry,
    )
    for decile, count in enumerate(stats["decile_counts"], start=1):
        deciles.labels(decile=str(decile)).set(int(count))
    info = Gauge(
        "churn_scoring_model_version_info", "Model version of the last run (value 1).", ["version"], registry=registry
    )
    info.labels(version=str(stats.get("model_version", ""))).set(1)
    Gauge("churn_scoring_failed", "1 when the last scoring run failed, else 0.", registry=registry).set(0)
    Gauge(
        "churn_scoring_last_success_timestamp_seconds",
        "Unix time of the last successful scoring run.",
        registry=registry,
    ).set(time.time() if timestamp is None else timestamp)
    return registry


def push_scoring(
    gateway: str,
    stats: dict[str, Any],
    *,
    job: str = DEFAULT_JOB,
    timeout: float = 10.0,
    timestamp: float | None = None,
) -> None:
    """Push a successful run's metrics, replacing the job's previous group.

    Raises:
        ChurnError: The Pushgateway cannot be reached or refuses the push.

    """
    push_registry(gateway, scoring_registry(stats, timestamp=timestamp), job=job, timeout=timeout)


def push_scoring_failure(gateway: str, *, job: str = DEFAULT_JOB, timeout: float = 10.0) -> None:
    """Record a failed run: ``churn_scoring_failed 1`` and the failure time; the last good numbers stay."""
    push_failure(gateway, job=job, timeout=timeout, subsystem="scoring")
