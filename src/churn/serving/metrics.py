"""The service's own Prometheus metrics, served on KServe's ``/metrics`` next to its latency histograms.

Defined once, on the default registry KServe exposes; every labelled series is created
at start with a zero so that rates and alert expressions exist before the first event.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import Counter, Histogram, Info

# Registered with the others, so /metrics always shows the prediction log's counters.
from churn.predictions.metrics import PREDICTION_LOG_DROPPED, PREDICTION_LOG_RECORDS  # noqa: F401
from churn.serving.refusal import REASONS

LABELS = ("retained", "churned")

PREDICTIONS = Counter("churn_predictions", "Customers scored, by predicted label.", ["label"])
PROBABILITY = Histogram(
    "churn_prediction_probability",
    "Predicted churn probabilities (unitless, 0 to 1).",
    buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
)
VALIDATION_FAILURES = Counter(
    "churn_input_validation_failures", "Requests refused with 400 because of their input, by reason.", ["reason"]
)
REQUEST_ERRORS = Counter("churn_request_errors", "Requests that failed on the server side (HTTP 5xx).")
MODEL_INFO = Info("churn_model", "The model being served.")

for _label in LABELS:
    PREDICTIONS.labels(label=_label)
for _reason in REASONS:
    VALIDATION_FAILURES.labels(reason=_reason)


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
