"""The prediction log's Prometheus counters (the serving image's /metrics shows them)."""

from prometheus_client import Counter

PREDICTION_LOG_RECORDS = Counter("churn_prediction_log_records", "Predictions written to the prediction log (records).")
PREDICTION_LOG_DROPPED = Counter(
    "churn_prediction_log_dropped",
    "Predictions the prediction log could not keep (queue full or store unreachable; records).",
)
