"""Judge one rollout step: the canary against the stable version over the step's interval, from Prometheus.

The queries are the PromQL a cluster runs against the serving metrics
(:mod:`churn.serving.metrics`, every series labelled ``model_version``), one named function
each, so the local end-to-end test, the benchmark and the deploy stage ask the same:

- requests: ``sum(increase(churn_request_duration_seconds_count{model_version="V"}[W]))``
- server errors: ``sum(increase(churn_request_errors_total{model_version="V"}[W]))``
- p95 latency: ``histogram_quantile(0.95, sum by (le) (rate(churn_request_duration_seconds_bucket{...}[W])))``
- validation failures: ``sum(increase(churn_input_validation_failures_total{model_version="V"}[W]))``
- probability histogram: ``sum by (le) (increase(churn_prediction_probability_bucket{model_version="V"}[W]))``
- churned / scored: ``sum(increase(churn_predictions_total{model_version="V",label="churned"}[W]))`` and
  the same without the ``label`` matcher.

Five checks compare them (thresholds in :class:`~churn.config.RolloutSettings`): server
errors per request and validation failures per request may exceed the stable's by at most
an absolute share, the canary's p95 latency may be at most a multiple of the stable's, the
PSI between the two versions' probability histograms (:func:`churn.monitoring.stats.psi`)
and the change in the share predicted to churn are bounded. Too few requests on either
side, or no Prometheus, is not evidence: the verdict is ``wait``, with the reason.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.config import RolloutSettings
from churn.errors import ChurnError
from churn.monitoring.stats import psi
from churn.rollout.decisions import CheckResult, StepAnalysis, Verdict

#: The check names, in the order they are reported.
SERVER_ERRORS = "server_errors"
LATENCY_P95 = "latency_p95"
VALIDATION_FAILURES = "validation_failures"
PROBABILITY_PSI = "probability_psi"
CHURN_SHARE = "churn_share"
_PER_REQUEST = {SERVER_ERRORS: "server errors per request", VALIDATION_FAILURES: "validation failures per request"}


class PrometheusError(ChurnError):
    """Prometheus could not be asked (unreachable, timed out) or refused the query."""


class Prometheus:
    """A client of the Prometheus HTTP API's instant queries (``/api/v1/query``), standard library only."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        """Ask the Prometheus at ``url`` (e.g. ``http://prometheus:9090``), waiting at most ``timeout`` seconds."""
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Evaluate ``promql`` now: each series' labels and value (an instant vector; a scalar as one unlabelled row).

        Raises:
            PrometheusError: Prometheus is not configured, cannot be reached, or refused the query.

        """
        if not self.url:
            raise PrometheusError("no Prometheus configured (CHURN_ROLLOUT__PROMETHEUS_URL is empty)")
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:  # a 4xx/5xx carries Prometheus's own error text
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise PrometheusError(f"Prometheus at {self.url} refused {promql!r}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(f"Prometheus at {self.url} cannot be reached: {reason}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus at {self.url} refused {promql!r}: {body.get('error', body)}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(dict(row["metric"]), float(row["value"][1])) for row in data["result"]]

    def value(self, promql: str) -> float | None:
        """The single value of ``promql`` (None: no series, or not a number, e.g. a quantile of nothing)."""
        rows = self.query(promql)
        if not rows or math.isnan(rows[0][1]):
            return None
        return rows[0][1]


# --------------------------------------------------------------------------- the PromQL


def _selector(version: str, **labels: str) -> str:
    pairs = {"model_version": version, **labels}
    return ",".join(f'{name}="{_escape(value)}"' for name, value in pairs.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _range(window_seconds: float) -> str:
    return f"{max(1, round(window_seconds))}s"


def requests_query(version: str, window_seconds: float) -> str:
    """Inference requests ``version`` answered in the window (every status, REST and gRPC)."""
    return f"sum(increase(churn_request_duration_seconds_count{{{_selector(version)}}}[{_range(window_seconds)}]))"


def errors_query(version: str, window_seconds: float) -> str:
    """Server-side failures (5xx, gRPC INTERNAL/UNAVAILABLE) under ``version`` in the window."""
    return f"sum(increase(churn_request_errors_total{{{_selector(version)}}}[{_range(window_seconds)}]))"


def latency_p95_query(version: str, window_seconds: float) -> str:
    """95th percentile of the whole request's seconds on the front door for ``version`` in the window."""
    buckets = f"churn_request_duration_seconds_bucket{{{_selector(version)}}}[{_range(window_seconds)}]"
    return f"histogram_quantile(0.95, sum by (le) (rate({buckets})))"


def validation_failures_query(version: str, window_seconds: float) -> str:
    """Requests ``version``'s server refused for their input (400) in the window, every reason."""
    return f"sum(increase(churn_input_validation_failures_total{{{_selector(version)}}}[{_range(window_seconds)}]))"


def probability_buckets_query(version: str, window_seconds: float) -> str:
    """The cumulative histogram (``le`` buckets) of the probabilities ``version`` answered in the window."""
    buckets = f"churn_prediction_probability_bucket{{{_selector(version)}}}[{_range(window_seconds)}]"
    return f"sum by (le) (increase({buckets}))"


def churned_query(version: str, window_seconds: float) -> str:
    """Customers ``version`` predicted to churn in the window."""
    selector = _selector(version, label="churned")
    return f"sum(increase(churn_predictions_total{{{selector}}}[{_range(window_seconds)}]))"


def scored_query(version: str, window_seconds: float) -> str:
    """Customers ``version`` scored in the window (both labels)."""
    return f"sum(increase(churn_predictions_total{{{_selector(version)}}}[{_range(window_seconds)}]))"


# --------------------------------------------------------------------------- one version's numbers


@dataclass(frozen=True)
class VersionWindow:
    """What one version did over the window, as Prometheus answered the queries above."""

    requests: float
    errors: float
    latency_p95: float | None
    validation_failures: float
    probability_counts: np.ndarray  # customers per probability bucket (not cumulative)
    churned: float
    scored: float

    @property
    def error_share(self) -> float | None:
        """Server errors per request (None: no requests)."""
        return _share(self.errors, self.requests)

    @property
    def validation_share(self) -> float | None:
        """Requests refused for their input, per request (None: no requests)."""
        return _share(self.validation_failures, self.requests)


def read_window(prometheus: Prometheus, version: str, window_seconds: float) -> VersionWindow:
    """Ask Prometheus what ``version`` did over the last ``window_seconds``.

    Raises:
        PrometheusError: Prometheus could not be asked.

    """
    rows = prometheus.query(probability_buckets_query(version, window_seconds))
    cumulative = sorted((float(labels["le"]), count) for labels, count in rows if "le" in labels)
    counts = np.diff([0.0, *(count for _, count in cumulative)]) if cumulative else np.zeros(0)
    return VersionWindow(
        requests=prometheus.value(requests_query(version, window_seconds)) or 0.0,
        errors=prometheus.value(errors_query(version, window_seconds)) or 0.0,
        latency_p95=prometheus.value(latency_p95_query(version, window_seconds)),
        validation_failures=prometheus.value(validation_failures_query(version, window_seconds)) or 0.0,
        probability_counts=np.clip(counts, 0.0, None),
        churned=prometheus.value(churned_query(version, window_seconds)) or 0.0,
        scored=prometheus.value(scored_query(version, window_seconds)) or 0.0,
    )


# --------------------------------------------------------------------------- the checks


def judge(canary: VersionWindow, stable: VersionWindow, settings: RolloutSettings) -> tuple[CheckResult, ...]:
    """The five checks of the canary against the stable version (``passed`` None: nothing to judge by)."""
    return (
        _increase(SERVER_ERRORS, canary.error_share, stable.error_share, settings.max_error_rate_increase),
        _latency(canary.latency_p95, stable.latency_p95, settings.max_latency_ratio),
        _increase(
            VALIDATION_FAILURES,
            canary.validation_share,
            stable.validation_share,
            settings.max_validation_failure_increase,
        ),
        _distribution(canary.probability_counts, stable.probability_counts, settings.max_probability_psi),
        _churn_share(_share(canary.churned, canary.scored), _share(stable.churned, stable.scored), settings),
    )


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _increase(name: str, canary: float | None, stable: float | None, threshold: float) -> CheckResult:
    what = _PER_REQUEST[name]
    if canary is None or stable is None:
        return CheckResult(name, canary, stable, None, threshold, None, f"no {what} to compare")
    increase = canary - stable
    passed = increase <= threshold
    detail = f"{what}: canary {canary:.4f} vs stable {stable:.4f} (+{increase:.4f}; at most +{threshold:g})"
    return CheckResult(name, canary, stable, increase, threshold, passed, detail)


def _latency(canary: float | None, stable: float | None, threshold: float) -> CheckResult:
    if canary is None or stable is None or stable <= 0:
        return CheckResult(LATENCY_P95, canary, stable, None, threshold, None, "no p95 latency to compare")
    ratio = canary / stable
    detail = (
        f"p95 latency: canary {canary * 1000:.1f} ms vs stable {stable * 1000:.1f} ms "
        f"(x{ratio:.2f}; at most x{threshold:g})"
    )
    return CheckResult(LATENCY_P95, canary, stable, ratio, threshold, ratio <= threshold, detail)


def _distribution(canary: np.ndarray, stable: np.ndarray, threshold: float) -> CheckResult:
    if canary.size == 0 or canary.shape != stable.shape or canary.sum() <= 0 or stable.sum() <= 0:
        return CheckResult(PROBABILITY_PSI, None, None, None, threshold, None, "no probability histograms to compare")
    value = psi(stable / stable.sum(), canary / canary.sum())
    detail = (
        f"PSI of the predicted probability: {value:.3f} over {int(canary.sum())} canary and "
        f"{int(stable.sum())} stable predictions (at most {threshold:g})"
    )
    return CheckResult(PROBABILITY_PSI, None, None, value, threshold, value <= threshold, detail)


def _churn_share(canary: float | None, stable: float | None, settings: RolloutSettings) -> CheckResult:
    threshold = settings.max_churn_share_change
    if canary is None or stable is None:
        return CheckResult(CHURN_SHARE, canary, stable, None, threshold, None, "no predictions to compare")
    change = abs(canary - stable)
    detail = f"share predicted to churn: canary {canary:.3f} vs stable {stable:.3f} (|change| at most {threshold:g})"
    return CheckResult(CHURN_SHARE, canary, stable, change, threshold, change <= threshold, detail)


def verdict_of(checks: tuple[CheckResult, ...]) -> tuple[Verdict, str]:
    """Any check failing: fail (naming each); any with nothing to judge by: wait; else pass."""
    failed = [check for check in checks if check.passed is False]
    if failed:
        return "fail", "; ".join(f"{check.name} failed: {check.detail}" for check in failed)
    unjudged = [check for check in checks if check.passed is None]
    if unjudged:
        return "wait", "; ".join(f"{check.name}: {check.detail}" for check in unjudged)
    return "pass", "every check passed"


def analyse_step(
    prometheus: Prometheus,
    canary_version: str,
    stable_version: str,
    window_seconds: float,
    settings: RolloutSettings,
) -> StepAnalysis:
    """Compare the canary with the stable version over the last ``window_seconds``.

    Args:
        prometheus: Where the serving metrics are (bind with :func:`functools.partial` for the controller).
        canary_version: The model version taking a share of the traffic.
        stable_version: The version it would replace.
        window_seconds: The step's analysis interval.
        settings: Thresholds and ``min_requests``.

    Returns:
        ``pass`` or ``fail`` with every check's numbers, or ``wait`` (with the reason) when Prometheus
        cannot be asked or either version answered fewer than ``min_requests`` requests.

    """
    try:
        canary = read_window(prometheus, canary_version, window_seconds)
        stable = read_window(prometheus, stable_version, window_seconds)
    except PrometheusError as exc:
        return StepAnalysis("wait", (), f"no verdict: {exc}")
    if min(canary.requests, stable.requests) < settings.min_requests:
        reason = (
            f"no verdict: too few requests in {window_seconds:g} s (canary {canary.requests:.0f}, "
            f"stable {stable.requests:.0f}; at least {settings.min_requests} each)"
        )
        return StepAnalysis("wait", (), reason, canary.requests, stable.requests)
    checks = judge(canary, stable, settings)
    verdict, reason = verdict_of(checks)
    return StepAnalysis(verdict, checks, reason, canary.requests, stable.requests)
