"""The monitoring stages (``components/monitoring.py``): validate the increment, check it, decide to retrain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churn.data.increments import is_folder_increment, latest_increment
from churn.engine import engine_for
from churn.errors import ChurnError
from churn.stages.data import validate

# Each task is a fresh interpreter that runs one step: heavy libraries (scikit-learn,
# pandera, MLflow) are imported by the functions that use them, not by every task.
if TYPE_CHECKING:
    from churn.monitoring.reference import ReferenceProfile
    from churn.training.models import ChurnModel


def load_current(
    out: str | Path, *, source_uri: str = "", raw_dir: str | Path = "data/raw", engine: str = "pandas"
) -> dict[str, Any]:
    """Copy the increment to check into ``out``: as CSV, or as a folder of parquet parts checked on Dask.

    ``source_uri`` is a file or folder of parts (path or ``s3://``) or a folder or ``s3://``
    prefix ending in ``/`` (its latest increment); empty: the latest increment in ``raw_dir``.
    A folder increment is loaded as a folder whatever the engine (it may not fit in memory);
    on the Dask engine a parquet file is too. A CSV file is one process's work on either engine.
    """
    chosen = engine_for(engine)
    out = Path(out)
    uri = latest_increment(source_uri or raw_dir) if not source_uri or source_uri.endswith("/") else source_uri
    folder = is_folder_increment(uri)
    if folder or not uri.lower().endswith((".parquet", ".pq")):
        # The increment's kind decides: a folder is the Dask engine's dataset, a CSV file the pandas one's.
        chosen = engine_for("dask" if folder else "pandas")
    chosen.load_increment(uri, out)
    fingerprint, size = chosen.fingerprint(out)
    return {"source": uri.rstrip("/") if folder else uri, "fingerprint": fingerprint, "bytes": size}


def validate_current(
    raw: str | Path,
    report: str | Path,
    *,
    summary: str | Path | None = None,
    min_rows: int = 100,
    pushgateway_url: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Validate the increment to monitor; when it is invalid or empty, record a failed monitoring run.

    The failure is pushed (``churn_monitoring_failed 1``) when a Pushgateway is given,
    then the validation error is raised: bad data never passes silently. ``source`` names
    the increment in the report (the file or URI it was loaded from).
    """
    from churn.validation import DataValidationError

    try:
        return validate(raw, report, summary=summary, min_rows=min_rows, source=source)
    except DataValidationError as error:
        if pushgateway_url:
            from churn.config import get_settings
            from churn.monitoring.publish import push_failure

            s = get_settings().monitoring
            try:
                push_failure(pushgateway_url, job=s.push_job, timeout=s.push_timeout_seconds)
            except ChurnError as push_error:
                error.add_note(str(push_error))
        raise ChurnError(f"monitoring failed: the current data is invalid: {error}") from error


def monitor(
    raw: str | Path,
    *,
    json_path: str | Path,
    markdown_path: str | Path | None = None,
    html_path: str | Path | None = None,
    tracking_uri: str,
    model_uri: str,
    pushgateway_url: str | None = None,
    timeout: int = 10,
    retries: int = 2,
    source: str | None = None,
) -> dict[str, Any]:
    """Check a daily increment against the reference of a registered model (the champion).

    Loads the model and its reference profile from MLflow, scores the increment, runs the
    drift and performance checks, writes the JSON, Markdown and Evidently HTML reports
    and pushes the metrics (see :func:`churn.monitoring.run.run_monitoring` for the failure
    rules). ``source`` names the increment in the report (the file or URI it was loaded
    from; ``raw`` when omitted). A folder of parts (the Dask engine's) is counted partition
    by partition on a cluster, and Evidently's report draws from a bounded seeded sample of it.

    Returns:
        The report as a dict (``source``, ``verdict``, ``flagged``, ...).

    """
    from churn.config import get_settings
    from churn.registry.mlflow_registry import connect_registry, download_model
    from churn.registry.model_dir import load_model_dir, reference_from_dir, reference_sample_from_dir

    settings = get_settings().monitoring
    url = pushgateway_url or None
    connect_registry(tracking_uri, timeout=timeout, retries=retries)
    folder = download_model(model_uri)
    model = load_model_dir(folder)
    profile = reference_from_dir(folder)
    sample = reference_sample_from_dir(folder)
    with engine_for(None, raw).monitoring_rows(raw, profile, model, settings) as (current, check):
        return _run_monitoring(
            model, profile, sample, current, check, json_path, markdown_path, html_path, url, source or str(raw)
        )


def _run_monitoring(
    model: ChurnModel,
    profile: ReferenceProfile,
    sample: pd.DataFrame | None,
    current: pd.DataFrame,
    check: Callable[[], Any] | None,
    json_path: str | Path,
    markdown_path: str | Path | None,
    html_path: str | Path | None,
    pushgateway_url: str | None,
    source: str,
) -> dict[str, Any]:
    from churn.config import get_settings
    from churn.monitoring.run import run_monitoring

    run = run_monitoring(
        profile,
        current,
        model.predict_proba(current) if len(current) else None,
        json_path=json_path,
        markdown_path=markdown_path,
        html_path=html_path if sample is not None else None,
        reference_frame=sample,
        reference_probabilities=None if sample is None else model.predict_proba(sample),
        settings=get_settings().monitoring,
        pushgateway_url=pushgateway_url,
        check=check,
        source=source,
    )
    return run.report.to_dict()


def monitoring_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The key numbers of a drift report, for the KFP Metrics artifact."""
    from churn.monitoring.report import LEVELS

    features = report.get("features", [])
    metrics = {
        "verdict_level": float(LEVELS.index(report["verdict"])),
        "drifted_features": float(len(report["flagged"])),
        "warned_features": float(len(report["warned"])),
        "current_rows": float(report["current_rows"]),
        "max_feature_psi": max((float(f["psi"]) for f in features if f.get("psi") is not None), default=0.0),
        "max_feature_wasserstein": max(
            (float(f["wasserstein"]) for f in features if f.get("wasserstein") is not None), default=0.0
        ),
    }
    optional = {
        "churn_rate_delta": ("churn_rate", "delta"),
        "prediction_psi": ("prediction", "psi"),
        "recent_roc_auc": ("performance", "roc_auc"),
    }
    for name, (section, key) in optional.items():
        value = (report.get(section) or {}).get(key)
        if value is not None:
            metrics[name] = float(value)
    return metrics


def retraining_reason(drift_verdict: str, performance_levels: dict[str, str] | None = None) -> str:
    """Why a monitoring run retrains ("" = it does not): a drift alert, a realized-performance alert, or both.

    This is THE retraining decision of the monitoring pipeline (``trigger_retraining`` calls it):
    any rule about when not to retrain belongs here. Today a realized-performance alert retrains
    again on every daily run while the old cohorts that caused it stay in the performance window;
    a cohort or cooldown rule (retrain once per alerting cohort, or not again within N days of a
    retraining) would be added here. Starting the run is :func:`churn.kfp.retrain.trigger_training`;
    the new model only registers as ``@challenger``, and the training pipeline's promotion gate
    still decides whether it becomes ``@champion``.

    Only the realized level counts among the performance checks: the estimate (CBPE) follows
    the inputs, which the drift checks already judge, and overdue labels are a data problem
    that a new model would not fix.
    """
    reasons = []
    if drift_verdict == "alert":
        reasons.append("drift alert")
    if (performance_levels or {}).get("realized") == "alert":
        reasons.append("realized performance alert")
    return " and ".join(reasons)
