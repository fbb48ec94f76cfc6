"""The monitoring pipeline's performance step: whether the model still ranks churners correctly.

It joins the prediction log with the labels that have arrived and judges each daily cohort
(:func:`churn.monitoring.cohorts.evaluate_cohorts`: realized and estimated performance and
their levels), writes the reports and pushes the metrics.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from churn.config import get_settings
from churn.data.generator import parse_date
from churn.data.labels import read_labels
from churn.errors import ChurnError
from churn.monitoring.cohorts import evaluate_cohorts
from churn.monitoring.perf_report import PerformanceReport
from churn.monitoring.publish import push_performance
from churn.monitoring.report import write_report
from churn.predictions.log import read_prediction_log
from churn.registry.mlflow_registry import connect_registry, download_model, resolve_version
from churn.registry.model_dir import load_model_dir, reference_from_dir


def monitor_performance(
    *,
    json_path: str | Path,
    markdown_path: str | Path | None = None,
    tracking_uri: str,
    model_uri: str,
    prediction_log_uri: str,
    labels_uri: str,
    as_of: str = "",
    pushgateway_url: str | None = None,
    timeout: int = 10,
    retries: int = 2,
) -> PerformanceReport:
    """The monitoring pipeline's performance step: join the prediction log with the labels, judge each cohort.

    Loads the model's stored threshold and test ROC-AUC (the reference profile logged with it)
    from MLflow (and the registry version behind ``model_uri``'s alias), reads the last
    ``window_days`` of the prediction log and the labels that have arrived by ``as_of`` (today,
    UTC, when empty), writes the JSON and Markdown reports and pushes the metrics to the
    Pushgateway (its own job, ``churn-performance``).

    Raises:
        ChurnError: The model, the log or the labels cannot be read, or the push failed
            (after the reports were written).

    """
    settings = get_settings()
    p = settings.performance
    day = parse_date(as_of or None)
    connect_registry(tracking_uri, timeout=timeout, retries=retries)
    # The version behind the alias: its own cohorts are the ones the retraining decision looks at.
    champion_version = resolve_version(model_uri) if model_uri.startswith("models:/") else None
    folder = download_model(model_uri)
    model = load_model_dir(folder)
    profile = reference_from_dir(folder)
    predictions = read_prediction_log(prediction_log_uri, start=day - dt.timedelta(days=p.window_days - 1), end=day)
    # A shadow's answers reached no customer: the champion's performance is judged on what callers got.
    predictions = predictions[predictions["variant"] != "shadow"].reset_index(drop=True)
    labels = read_labels(labels_uri, as_of=day)
    report = evaluate_cohorts(
        predictions,
        labels,
        as_of=day,
        threshold=model.threshold,
        reference_roc_auc=profile.roc_auc,
        reference_roc_auc_standard_error=profile.roc_auc_standard_error,
        label_delay_days=p.label_delay_days,
        label_grace_days=p.label_grace_days,
        reference_cohorts=p.reference_cohorts,
        settings=settings.monitoring,
    )
    report.champion_version = champion_version
    written, _ = write_report(report, json_path, markdown_path)
    gateway = pushgateway_url or settings.monitoring.pushgateway_url
    if gateway:
        s = settings.monitoring
        try:
            push_performance(report, gateway, job=p.push_job, timeout=s.push_timeout_seconds)
        except ChurnError as error:
            raise ChurnError(f"{error} (the reports were written: {written})") from error
    return report
