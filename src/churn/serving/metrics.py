"""The service's own Prometheus metrics, served on KServe's ``/metrics`` next to its latency histograms.

Defined once, on the default registry KServe exposes. Every series carries the
``model_version`` that answered, so a rollout can compare a canary with the stable version
(:mod:`churn.rollout.analysis`) and the dashboards and alerts still add them up with
``sum``. The server's own version is set at load (:func:`serve_version`), which creates each
of its series with a zero so that rates and alert expressions exist before the first event.
In transformer mode the version that answered is the predictor's (a KServe Standard canary
predictor can sit behind the stable transformer): the transformer notes it on the request
(:func:`answered_by`), and the front door's latency and error counts use it
(:func:`answering_version`).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter, Histogram, Info

# Registered with the others, so /metrics always shows the prediction log's counters.
from churn.predictions.metrics import PREDICTION_LOG_DROPPED, PREDICTION_LOG_RECORDS  # noqa: F401
from churn.serving.refusal import REASONS

LABELS = ("retained", "churned")
#: The label every series of this module carries.
VERSION_LABEL = "model_version"
#: Seconds; fine around a single-row request's few milliseconds, coarse up to a large batch.
DURATION_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

PREDICTIONS = Counter(
    "churn_predictions", "Customers scored, by predicted label and model version.", [VERSION_LABEL, "label"]
)
PROBABILITY = Histogram(
    "churn_prediction_probability",
    "Predicted churn probabilities (unitless, 0 to 1), by model version.",
    [VERSION_LABEL],
    buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
)
VALIDATION_FAILURES = Counter(
    "churn_input_validation_failures",
    "Requests refused with 400 because of their input, by reason and model version.",
    [VERSION_LABEL, "reason"],
)
REQUEST_ERRORS = Counter(
    "churn_request_errors",
    "Requests that failed on the server side (HTTP 5xx, gRPC INTERNAL/UNAVAILABLE), by model version.",
    [VERSION_LABEL],
)
REQUEST_DURATION = Histogram(
    "churn_request_duration_seconds",
    "Seconds from an inference request's arrival to its answer (REST or gRPC, the whole request), by model version.",
    [VERSION_LABEL],
    buckets=DURATION_BUCKETS,
)
MODEL_INFO = Info("churn_model", "The model being served.")


@dataclass
class _Answer:
    """Which model version answered one request; filled in by the transformer, read by the front door."""

    version: str | None = None


_SERVED: list[str] = [""]  # this server's own version (one slot, set at load)
#: Set per request by the front door (REST middleware, gRPC servicer) to a fresh holder; a holder,
#: not a value, so a version noted in a task the request's context was copied into still arrives.
_ANSWER: contextvars.ContextVar[_Answer | None] = contextvars.ContextVar("churn_answered_by", default=None)


def serve_version(version: str) -> None:
    """Record this server's model version and create all of its series with a zero."""
    _SERVED[0] = version
    for label in LABELS:
        PREDICTIONS.labels(version, label)
    for reason in REASONS:
        VALIDATION_FAILURES.labels(version, reason)
    PROBABILITY.labels(version)
    REQUEST_ERRORS.labels(version)
    REQUEST_DURATION.labels(version)


def served_version() -> str:
    """The model version of this server (``--model_version`` or the loaded model's), as set at load."""
    return _SERVED[0]


def start_request() -> contextvars.Token[_Answer | None]:
    """Open a request's record of which version answers it (the front door; reset with the token after)."""
    return _ANSWER.set(_Answer())


def end_request(token: contextvars.Token[_Answer | None]) -> None:
    """Close the request's record opened by :func:`start_request`."""
    _ANSWER.reset(token)


def answered_by(version: str | None) -> str:
    """Note the version that answered this request (the predictor's, in transformer mode) and return the label.

    Args:
        version: The version the predictor's answer named; empty or None: this server's own.

    Returns:
        The version to label this request's series with.

    """
    label = version or served_version()
    answer = _ANSWER.get()
    if answer is not None:
        answer.version = label
    if label != served_version():  # a predictor of another version: its series start at zero too
        PROBABILITY.labels(label)
        REQUEST_ERRORS.labels(label)
        REQUEST_DURATION.labels(label)
    return label


def answering_version() -> str:
    """The version that answered the current request: noted by :func:`answered_by`, else this server's own."""
    answer = _ANSWER.get()
    return (answer.version if answer is not None else None) or served_version()


def count_validation_failure(reason: str) -> None:
    """Count one request refused for its input (this server's version judged it)."""
    VALIDATION_FAILURES.labels(served_version(), reason).inc()


def observe_request(seconds: float, *, failed: bool) -> None:
    """Record one inference request's duration, and a server-side failure, under the version that answered."""
    version = answering_version()
    REQUEST_DURATION.labels(version).observe(seconds)
    if failed:
        REQUEST_ERRORS.labels(version).inc()


def count_server_error() -> None:
    """Count one server-side failure outside an inference request's timing (a health or metadata call)."""
    REQUEST_ERRORS.labels(answering_version()).inc()


def observe_all(histogram: Histogram, values: np.ndarray) -> None:
    """Observe many values at once: one increment per bucket instead of one locked call per value."""
    if len(values) <= 16:
        for value in values:
            histogram.observe(float(value))
        return
    # prometheus_client keeps non-cumulative bucket counters (_buckets) and a sum (_sum); the
    # pinned version's observe() does exactly these increments, value by value.
    bounds = np.asarray(histogram._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(values.sum()))
